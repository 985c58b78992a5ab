//! `.msh` agent settings files (agent spec §7) into `ironmesh_proto::msh::MeshSettings`.
//!
//! Checked: accepted settings have ids of the right sizes, and rendering them gives a file
//! that parses to the same settings (the group name with line breaks turned into spaces,
//! as `render` writes it).

#![no_main]

// Linked for its global allocator, which turns runaway allocations into crashes.
use ironmesh_fuzz as _;
use ironmesh_proto::msh::MeshSettings;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let Ok(settings) = MeshSettings::parse(&text) else {
        return;
    };
    assert!([32, 48].contains(&settings.mesh_id.len()));
    assert_eq!(settings.server_id.len(), 48);
    let rendered = settings.render();
    assert!(rendered.starts_with("\r\nMeshName="));
    let expected = MeshSettings {
        mesh_name: settings.mesh_name.replace(['\r', '\n'], " "),
        ..settings
    };
    assert_eq!(MeshSettings::parse(&rendered), Ok(expected));
});
