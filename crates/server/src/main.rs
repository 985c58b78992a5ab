fn main() -> std::process::ExitCode {
    tune_allocator();
    ironmesh_server::cli::run()
}

/// glibc raises its mmap threshold after big blocks are freed, so the 19 MiB argon2
/// buffers of a burst of logins would stay resident in every thread's arena. A fixed
/// threshold returns them to the system when freed.
fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator tuning; called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 * 1024);
    }
}
