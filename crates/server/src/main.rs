fn main() -> std::process::ExitCode {
    tune_allocator();
    ignore_file_size_signal();
    ironmesh_server::cli::run()
}

/// A write past the file-size limit (RLIMIT_FSIZE) raises SIGXFSZ, whose default action
/// kills the process. Ignored, the write fails with EFBIG instead: the database reports its
/// storage full, and the server keeps serving.
fn ignore_file_size_signal() {
    #[cfg(unix)]
    // SAFETY: setting a signal to SIG_IGN installs no handler code; done before any thread starts.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
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
