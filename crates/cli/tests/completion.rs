//! `ironmesh completion SHELL`: a script for each shell, naming the subcommands.

use ironmesh_testkit::cli::Cli;

#[test]
fn completion_scripts_name_the_subcommands() {
    let cli = Cli::new();
    for (shell, marker) in [
        ("bash", "complete -F _ironmesh"),
        ("zsh", "#compdef ironmesh"),
        ("fish", "complete -c ironmesh"),
    ] {
        let out = cli.run(&["completion", shell]);
        assert!(
            out.status.success(),
            "{shell}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let script = String::from_utf8(out.stdout).unwrap();
        assert!(
            script.contains(marker),
            "{shell}: no {marker:?} in\n{script}"
        );
        for sub in ["login", "gateways", "gateway-approve", "completion"] {
            assert!(script.contains(sub), "{shell}: {sub} missing");
        }
        // Nested subcommands too.
        assert!(script.contains("ops"), "{shell}: gateways ops missing");
    }
    let out = cli.run(&["completion", "tcsh"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid value 'tcsh'"));
}
