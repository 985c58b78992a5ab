//! MeshCentral's core, assembled by ironmesh from the installed npm package, is the exact
//! blob the real server pushes: same length and SHA-384 as in the traced command 10 of
//! docs/protocol/agent.md §11.1.

use ironmesh_server::agent_cores::{CoreProvider, LINUX_X86_64};

#[test]
fn assembled_core_matches_the_real_servers_blob() {
    let dir = ironmesh_testkit::meshctrl::script()
        .parent()
        .unwrap()
        .to_path_buf();
    let cores = CoreProvider::from_meshcentral(&dir).unwrap();
    let core = cores.core_for(LINUX_X86_64).expect("core for Linux x86-64");
    // Frame = 2 (command) + 2 (request id) + 48 (hash) + blob.
    assert_eq!(
        core.frame.len(),
        595_014,
        "same size as the traced command 10"
    );
    let hex: String = core.hash.iter().map(|b| format!("{b:02x}")).collect();
    assert!(hex.starts_with("04f0decb"), "hash {hex}");
    assert!(cores.core_for(3).is_none());
}
