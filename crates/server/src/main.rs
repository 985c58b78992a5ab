fn main() -> std::process::ExitCode {
    ironmesh_server::cli::run()
}
