//! The store against both databases: every query, the portability rules and the
//! constraints the domain relies on.

use crate::store::events::EventFilter;
use crate::store::{
    DeviceGroup, DeviceLink, DeviceRecord, LoginToken, Store, StoreError, User, UserGroup,
    WebSession,
};
use ironmesh_testkit::postgres;

async fn sqlite() -> (Store, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
    (Store::open(&url).await.unwrap(), dir)
}

fn user(name: &str) -> User {
    User {
        id: format!("user//{name}"),
        name: name.to_string(),
        email: None,
        email_verified: false,
        realname: None,
        password_hash: "$argon2id$x".into(),
        site_rights: 0,
        reset_next_login: false,
        created_ms: 1,
        password_changed_ms: 1,
    }
}

fn group(id: &str, name: &str) -> DeviceGroup {
    DeviceGroup {
        id: id.to_string(),
        name: name.to_string(),
        mtype: 2,
        description: String::new(),
        flags: 0,
        consent: 0,
        creator_id: None,
        creator_name: None,
        created_ms: 5,
    }
}

async fn exercise(store: Store) {
    // Users: insert, unique ids, u32 rights survive the i64 column.
    let mut admin = user("admin");
    admin.site_rights = u32::MAX;
    store.insert_user(&admin).await.unwrap();
    store.insert_user(&user("bob")).await.unwrap();
    assert!(matches!(
        store.insert_user(&user("bob")).await,
        Err(StoreError::Conflict)
    ));
    assert_eq!(
        store
            .user("user//admin")
            .await
            .unwrap()
            .unwrap()
            .site_rights,
        u32::MAX
    );
    assert_eq!(store.user_count().await.unwrap(), 2);
    assert!(store
        .set_password("user//bob", "$argon2id$y", 9)
        .await
        .unwrap());
    assert_eq!(
        store
            .user("user//bob")
            .await
            .unwrap()
            .unwrap()
            .password_hash,
        "$argon2id$y"
    );

    // Groups and members, with cascade on delete.
    store
        .insert_group(&group("mesh//g1", "one"), Some(("user//admin", u32::MAX)))
        .await
        .unwrap();
    store
        .insert_group(&group("mesh//g2", "two"), None)
        .await
        .unwrap();
    store
        .set_group_member("mesh//g1", "user//bob", 8)
        .await
        .unwrap();
    store
        .set_group_member("mesh//g1", "user//bob", 24)
        .await
        .unwrap();
    let members = store.group_members("mesh//g1").await.unwrap();
    assert_eq!(members.len(), 2);
    assert_eq!(
        members
            .iter()
            .find(|m| m.user_id == "user//bob")
            .unwrap()
            .rights,
        24
    );
    assert_eq!(store.memberships("user//bob").await.unwrap().len(), 1);
    assert_eq!(store.groups().await.unwrap().len(), 2);

    // Devices: the stored group and name win on reconnect.
    let mut d = DeviceRecord {
        id: "node//n1".into(),
        group_id: "mesh//g1".into(),
        name: "host1".into(),
        host: "host1".into(),
        first_connect_ms: 10,
        last_connect_ms: 10,
        ..Default::default()
    };
    store.upsert_device_on_connect(&d).await.unwrap();
    d.group_id = "mesh//g2".into();
    d.host = "host1b".into();
    d.last_connect_ms = 20;
    store.upsert_device_on_connect(&d).await.unwrap();
    let back = store.device("node//n1").await.unwrap().unwrap();
    assert_eq!(
        (
            back.group_id.as_str(),
            back.name.as_str(),
            back.host.as_str()
        ),
        ("mesh//g1", "host1", "host1b")
    );
    assert_eq!((back.first_connect_ms, back.last_connect_ms), (10, 20));
    assert_eq!(store.devices_of_user("user//bob").await.unwrap().len(), 1);
    assert_eq!(store.devices_in_group("mesh//g2").await.unwrap().len(), 0);

    // User groups: a member holds the group's link rights; devices follow; removal
    // takes the memberships and links with it. Listed oldest first.
    store.insert_user(&user("carol")).await.unwrap();
    let ugrp = |id: &str, name: &str, created_ms| UserGroup {
        id: id.into(),
        name: name.into(),
        description: String::new(),
        created_ms,
    };
    store
        .insert_user_group(&ugrp("ugrp//b", "later", 20))
        .await
        .unwrap();
    store
        .insert_user_group(&ugrp("ugrp//a", "staff", 10))
        .await
        .unwrap();
    assert!(matches!(
        store.insert_user_group(&ugrp("ugrp//a", "again", 30)).await,
        Err(StoreError::Conflict)
    ));
    let names: Vec<String> = store
        .user_groups()
        .await
        .unwrap()
        .into_iter()
        .map(|g| g.name)
        .collect();
    assert_eq!(names, ["staff", "later"]);
    for _ in 0..2 {
        store
            .add_user_group_member("ugrp//a", "user//carol")
            .await
            .unwrap();
    }
    store
        .set_group_user_group("mesh//g1", "ugrp//a", 4)
        .await
        .unwrap();
    store
        .set_group_user_group("mesh//g1", "ugrp//a", 8)
        .await
        .unwrap();
    assert_eq!(
        store
            .memberships_via_user_groups("user//carol")
            .await
            .unwrap(),
        vec![("mesh//g1".to_string(), 8)]
    );
    assert!(store.memberships("user//carol").await.unwrap().is_empty());
    assert_eq!(store.devices_of_user("user//carol").await.unwrap().len(), 1);
    assert_eq!(
        store.user_ids_via_user_groups("mesh//g1").await.unwrap(),
        ["user//carol"]
    );
    let members = store.user_group_members("ugrp//a").await.unwrap();
    assert_eq!(
        (members.len(), members[0].id.as_str(), members[0].rights),
        (1, "user//carol", 1)
    );
    assert_eq!(
        store.user_groups_of("user//carol").await.unwrap()[0].name,
        "staff"
    );
    let links = store.group_user_groups("mesh//g1").await.unwrap();
    assert_eq!((links[0].id.as_str(), links[0].rights), ("ugrp//a", 8));
    assert_eq!(
        store.user_group_device_groups("ugrp//a").await.unwrap()[0].id,
        "mesh//g1"
    );
    assert!(store
        .remove_user_group_member("ugrp//b", "user//carol")
        .await
        .unwrap()
        .eq(&false));
    assert!(!store
        .remove_group_user_group("mesh//g2", "ugrp//a")
        .await
        .unwrap());
    assert!(store.delete_user_group("ugrp//a").await.unwrap());
    assert!(store
        .memberships_via_user_groups("user//carol")
        .await
        .unwrap()
        .is_empty());
    assert!(store
        .group_user_groups("mesh//g1")
        .await
        .unwrap()
        .is_empty());
    assert!(store
        .devices_of_user("user//carol")
        .await
        .unwrap()
        .is_empty());
    store
        .add_user_group_member("ugrp//b", "user//carol")
        .await
        .unwrap();
    assert!(store.delete_user("user//carol").await.unwrap());
    assert!(store
        .user_group_members("ugrp//b")
        .await
        .unwrap()
        .is_empty());

    // What users set on a device, and rights on one device (`device_members`): a linked
    // user sees the device without its group; links go with the device or the user.
    store.insert_user(&user("carol")).await.unwrap();
    let mut d = store.device("node//n1").await.unwrap().unwrap();
    d.name = "front desk".into();
    d.description = "by the \"door\"".into();
    d.tags = vec!["a".into(), "b, c".into()];
    d.icon = 3;
    d.consent = 8;
    assert!(store.set_device_fields(&d).await.unwrap());
    assert_eq!(store.device("node//n1").await.unwrap().unwrap(), d);
    store
        .set_device_link("node//n1", "user//carol", 8)
        .await
        .unwrap();
    store
        .set_device_link("node//n1", "user//carol", u32::MAX - 7)
        .await
        .unwrap();
    let link = DeviceLink {
        user_id: "user//carol".into(),
        rights: u32::MAX - 7,
    };
    assert_eq!(
        store.device("node//n1").await.unwrap().unwrap().links,
        std::slice::from_ref(&link)
    );
    assert_eq!(
        store.device_links_of_user("user//carol").await.unwrap(),
        [("node//n1".to_string(), u32::MAX - 7)]
    );
    let seen = store.devices_of_user("user//carol").await.unwrap();
    assert_eq!(
        seen.iter()
            .map(|d| (&d.id[..], &d.links[..]))
            .collect::<Vec<_>>(),
        [("node//n1", &[link][..])]
    );
    assert_eq!(store.devices().await.unwrap()[0].links.len(), 1);
    let n2 = DeviceRecord {
        id: "node//n2".into(),
        group_id: "mesh//g2".into(),
        name: "n2".into(),
        ..Default::default()
    };
    store.upsert_device_on_connect(&n2).await.unwrap();
    store
        .set_device_link("node//n2", "user//carol", 8)
        .await
        .unwrap();
    assert!(store
        .set_device_group("node//n2", "mesh//g1")
        .await
        .unwrap());
    assert!(!store
        .set_device_group("node//n9", "mesh//g1")
        .await
        .unwrap());
    assert_eq!(store.devices_in_group("mesh//g1").await.unwrap().len(), 2);
    assert_eq!(store.devices_of_user("user//carol").await.unwrap().len(), 2);
    assert!(store
        .remove_device_link("node//n2", "user//carol")
        .await
        .unwrap());
    assert!(!store
        .remove_device_link("node//n2", "user//carol")
        .await
        .unwrap());
    store
        .set_device_link("node//n2", "user//carol", 8)
        .await
        .unwrap();
    assert!(store.delete_device("node//n2").await.unwrap());
    assert!(!store.delete_device("node//n2").await.unwrap());
    assert_eq!(
        store
            .device_links_of_user("user//carol")
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(store.delete_user("user//carol").await.unwrap());
    assert!(store
        .device("node//n1")
        .await
        .unwrap()
        .unwrap()
        .links
        .is_empty());

    // Events: a hash chain in append order, listed newest first, visible through
    // memberships; in a group where a member has LIMIT_EVENTS, only events they caused
    // or no one caused.
    store.insert_user(&user("lim")).await.unwrap();
    store
        .set_group_member("mesh//g1", "user//lim", 8192)
        .await
        .unwrap();
    let mut records: Vec<crate::store::EventRecord> = [
        (Some("mesh//g1"), None, "x"),
        (Some("mesh//g2"), None, "x"),
        (None, Some("user//bob"), "y"),
        (Some("mesh//g1"), Some("user//bob"), "y"),
    ]
    .iter()
    .enumerate()
    .map(|(i, (gid, uid, action))| crate::store::EventRecord {
        id: format!("e{i}"),
        time_ms: 100 + i as i64,
        etype: "mesh".into(),
        action: action.to_string(),
        user_id: uid.map(str::to_string),
        group_id: gid.map(str::to_string),
        msg: format!("m{i}"),
        body: "{}".into(),
        remote_addr: Some("127.0.0.1".into()),
        outcome: "success".into(),
        ..Default::default()
    })
    .collect();
    store.append_events(&mut records[..2]).await.unwrap();
    store.append_events(&mut records[2..]).await.unwrap();
    let chained = store.chain_after(0, 10).await.unwrap();
    assert_eq!(
        chained.iter().map(|e| e.seq).collect::<Vec<_>>(),
        [1, 2, 3, 4]
    );
    assert_eq!(chained[0].prev_hash, crate::store::events::GENESIS);
    for pair in chained.windows(2) {
        assert_eq!(pair[1].prev_hash, pair[0].hash);
    }
    for r in &chained {
        assert_eq!(r.hash, r.chain_hash(&r.prev_hash), "{r:?}");
        assert_eq!(r.remote_addr.as_deref(), Some("127.0.0.1"));
    }
    assert_eq!(store.chain_state().await.unwrap().0.unwrap().seq, 4);
    let ids = |events: Vec<crate::store::EventRecord>| -> Vec<String> {
        events.into_iter().map(|e| e.id).collect()
    };
    let filter = |f: EventFilter<'static>| EventFilter { limit: 10, ..f };
    assert_eq!(
        ids(store.events(&filter(EventFilter::default())).await.unwrap()),
        ["e3", "e2", "e1", "e0"]
    );
    assert_eq!(
        ids(store
            .events(&filter(EventFilter {
                visible_to: Some("user//bob"),
                ..Default::default()
            }))
            .await
            .unwrap()),
        ["e3", "e2", "e0"]
    );
    assert_eq!(
        ids(store
            .events(&filter(EventFilter {
                visible_to: Some("user//lim"),
                ..Default::default()
            }))
            .await
            .unwrap()),
        ["e0"]
    );
    assert_eq!(
        ids(store
            .events(&filter(EventFilter {
                action: Some("y"),
                group_id: Some("mesh//g1"),
                ..Default::default()
            }))
            .await
            .unwrap()),
        ["e3"]
    );
    assert_eq!(
        ids(store
            .events(&filter(EventFilter {
                since_ms: Some(101),
                until_ms: Some(103),
                ..Default::default()
            }))
            .await
            .unwrap()),
        ["e2", "e1"]
    );
    let limited = store
        .events(&EventFilter {
            limit: 1,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(limited.len(), 1);
    // Retention removes the oldest and records where the chain now starts.
    assert_eq!(store.prune_events(102).await.unwrap(), 2);
    assert_eq!(store.chain_state().await.unwrap().1, 2);
    assert_eq!(store.chain_after(0, 10).await.unwrap()[0].seq, 3);

    // Sessions expire; tokens belong to their user.
    store
        .insert_web_session(&WebSession {
            token_hash: "h".into(),
            user_id: "user//bob".into(),
            created_ms: 1,
            expires_ms: 50,
        })
        .await
        .unwrap();
    assert!(store.web_session("h", 49).await.unwrap().is_some());
    assert!(store.web_session("h", 50).await.unwrap().is_none());
    assert_eq!(store.delete_expired_sessions(60).await.unwrap(), 1);
    let token = LoginToken {
        token_user: "~t:abc".into(),
        user_id: "user//bob".into(),
        name: "ci".into(),
        secret_hash: "s".into(),
        created_ms: 1,
        expires_ms: 0,
    };
    store.insert_login_token(&token).await.unwrap();
    assert_eq!(store.login_token("~t:abc").await.unwrap().unwrap(), token);
    assert!(!store
        .delete_login_token("user//admin", "~t:abc")
        .await
        .unwrap());

    // WiFiDogX gateways: reports keep approval and wanted modes; portal sessions move on.
    use crate::store::gateways::{GatewayRecord, PortalSession};
    let mut gw = GatewayRecord {
        device_id: "GW-1".into(),
        generation: "9.x".into(),
        mode: Some(0),
        device_info: Some("{\"a\":1}".into()),
        gateways: Some("[]".into()),
        first_seen_ms: 5,
        last_seen_ms: 5,
        ..Default::default()
    };
    store.record_gateway_report(&gw).await.unwrap();
    assert!(store
        .approve_gateway("GW-1", Some("mesh//g2"))
        .await
        .unwrap());
    assert!(store
        .set_wanted_auth_modes("GW-1", "{\"GW\":0}")
        .await
        .unwrap());
    gw.device_info = None;
    gw.last_seen_ms = 9;
    store.record_gateway_report(&gw).await.unwrap();
    let back = store.gateway("GW-1").await.unwrap().unwrap();
    assert!(back.approved);
    assert_eq!(back.group_id.as_deref(), Some("mesh//g2"));
    assert_eq!(
        back.device_info.as_deref(),
        Some("{\"a\":1}"),
        "absent info keeps the stored one"
    );
    assert_eq!(back.wanted_auth_modes.as_deref(), Some("{\"GW\":0}"));
    assert_eq!((back.first_seen_ms, back.last_seen_ms), (5, 9));
    assert_eq!(store.gateways().await.unwrap().len(), 1);
    store
        .insert_portal_session(&PortalSession {
            token: "tok".into(),
            gw_id: "GW".into(),
            client_mac: "aa".into(),
            client_ip: String::new(),
            state: 0,
            created_ms: 1,
            updated_ms: 1,
        })
        .await
        .unwrap();
    assert!(store
        .update_portal_session("tok", 1, "", "10.0.0.2", 2)
        .await
        .unwrap());
    let p = store.portal_session("tok").await.unwrap().unwrap();
    assert_eq!(
        (p.state, p.client_mac.as_str(), p.client_ip.as_str()),
        (1, "aa", "10.0.0.2")
    );

    // Settings: the first writer wins.
    assert_eq!(
        store.setting_or_insert("k", "first").await.unwrap(),
        "first"
    );
    assert_eq!(
        store.setting_or_insert("k", "second").await.unwrap(),
        "first"
    );

    // Power history: a window with the state before it, closing what the last server
    // left online, pruning all but each device's newest change.
    use super::power::PowerChange;
    let change = |time_ms, power| PowerChange { time_ms, power };
    for (t, p) in [(100, 1), (200, 0), (300, 1)] {
        store
            .insert_power_change("node//n1", change(t, p))
            .await
            .unwrap();
    }
    assert_eq!(
        store.power_changes("node//n1", 250).await.unwrap(),
        vec![change(200, 0), change(300, 1)]
    );
    assert_eq!(store.close_power_history(400).await.unwrap(), 1);
    assert_eq!(store.close_power_history(450).await.unwrap(), 0);
    assert_eq!(store.prune_power_history(1_000).await.unwrap(), 3);
    assert_eq!(
        store.power_changes("node//n1", 0).await.unwrap(),
        vec![change(400, 0)]
    );

    // Deleting a group takes its devices and memberships; deleting a user its tokens.
    assert!(store.delete_group("mesh//g1").await.unwrap());
    assert!(store.device("node//n1").await.unwrap().is_none());
    assert!(store.memberships("user//bob").await.unwrap().is_empty());
    assert!(store.power_changes("node//n1", 0).await.unwrap().is_empty());
    assert!(store.delete_user("user//bob").await.unwrap());
    assert!(store.login_token("~t:abc").await.unwrap().is_none());
    assert!(!store.delete_user("user//bob").await.unwrap());
}

#[tokio::test]
async fn store_on_sqlite() {
    let (store, _dir) = sqlite().await;
    exercise(store).await;
}

#[tokio::test]
async fn store_on_postgres() {
    if !postgres::enabled() {
        return;
    }
    let url = postgres::fresh_database().await;
    exercise(Store::open(&url).await.unwrap()).await;
    // Opening again finds the schema current (migrations are idempotent).
    let again = Store::open(&url).await.unwrap();
    assert_eq!(again.user_count().await.unwrap(), 2);
}

#[tokio::test]
async fn sqlite_reopen_keeps_data_and_uses_wal() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
    let store = Store::open(&url).await.unwrap();
    store.insert_user(&user("carol")).await.unwrap();
    store.close().await;
    let store = Store::open(&url).await.unwrap();
    assert!(store.user("user//carol").await.unwrap().is_some());
    assert!(dir.path().join("t.db-wal").exists() || dir.path().join("t.db-shm").exists());
}

#[tokio::test]
async fn refuses_unknown_database_urls() {
    let err = Store::open("mysql://x").await.err().unwrap();
    assert!(format!("{err:#}").contains("unsupported database URL"));
}
