//! The differential test: the same `meshctrl.js` commands, in the same order, against the
//! real MeshCentral server (npm package, started on loopback) and against ironmesh, each with
//! one stock agent online; the outputs are compared after replacing what must differ (ids,
//! times, hashes, ports).
//!
//! Every step whose outputs differ must be listed, with its reason, in README.md's table
//! between `<!-- meshctrl-differences -->` and `<!-- /meshctrl-differences -->`; a listed
//! step whose outputs have become equal fails too, so the list stays true. The whole
//! comparison (both outputs of every step) is written to
//! `target/meshctrl-diff/report.md` for reading.

#![cfg(all(target_os = "linux", target_arch = "x86_64"))]

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use ironmesh_testkit::agent::{create_group, fetch_msh, StockAgent};
use ironmesh_testkit::meshcentral::MeshCentral;
use ironmesh_testkit::meshctrl;
use ironmesh_testkit::server::{Db, TestServer};
use ironmesh_testkit::wait_until;
use serde_json::Value;

const ADMIN: &str = "admin";
const PASS: &str = "Adm1n-pass!";
const USER2: &str = "user2";
const PASS2: &str = "Us3r2-pass!";

/// How long one meshctrl run may take before it counts as hung (both servers hang on a few
/// requests; the output is then `<no answer>`).
const RUN_TIMEOUT: Duration = Duration::from_secs(12);

/// Who runs a step.
#[derive(Clone, Copy)]
enum Who {
    Admin,
    User2,
}

/// Finds a value for later steps in a step's output.
type Finder = fn(&str) -> Option<String>;

/// One meshctrl invocation. `{node}`, `{group}` and other names in braces are replaced with
/// what earlier steps found on the same server.
struct Step {
    name: &'static str,
    who: Who,
    args: &'static str,
    /// A name for later steps, and how to find its value in this step's output.
    capture: Option<(&'static str, Finder)>,
}

const fn admin(name: &'static str, args: &'static str) -> Step {
    Step {
        name,
        who: Who::Admin,
        args,
        capture: None,
    }
}

const fn user2(name: &'static str, args: &'static str) -> Step {
    Step {
        name,
        who: Who::User2,
        args,
        capture: None,
    }
}

impl Step {
    const fn capture(mut self, var: &'static str, find: Finder) -> Step {
        self.capture = Some((var, find));
        self
    }
}

/// The id of the first user group in `listusergroups --json` (an object keyed by id).
fn first_user_group(output: &str) -> Option<String> {
    let groups: Value = serde_json::from_str(output).ok()?;
    groups.as_object()?.keys().next().cloned()
}

/// The sequence, run in this order on both servers. Names are unique; README.md refers to
/// them.
const STEPS: &[Step] = &[
    admin("serverinfo", "serverinfo"),
    admin("serverinfo-json", "serverinfo --json"),
    admin("userinfo", "userinfo"),
    admin("userinfo-json", "userinfo --json"),
    admin("listusers", "listusers"),
    admin("listusers-json", "listusers --json"),
    admin("listusersessions", "listusersessions"),
    admin("listusersessions-json", "listusersessions --json"),
    admin("listdevicegroups", "listdevicegroups"),
    admin("listdevicegroups-json", "listdevicegroups --json"),
    admin("listdevices", "listdevices"),
    admin("listdevices-group", "listdevices --group diff"),
    admin("listdevices-details", "listdevices --details"),
    admin("listdevices-count", "listdevices --count"),
    admin(
        "listusersofdevicegroup",
        "listusersofdevicegroup --id {group}",
    ),
    admin(
        "listusersofdevicegroup-unknown",
        "listusersofdevicegroup --id nosuchgroup",
    ),
    admin("deviceinfo", "deviceinfo --id {node}"),
    admin("deviceinfo-raw", "deviceinfo --id {node} --raw"),
    admin("deviceinfo-unknown", "deviceinfo --id nosuchdevice"),
    admin("getnetworkinfo-unknown", "getnetworkinfo --id nosuchdevice"),
    admin("lastconnect-unknown", "lastconnect --id nosuchdevice"),
    admin(
        "adduser",
        "adduser --user user2 --pass Us3r2-pass! --realname Two",
    ),
    admin("adduser-again", "adduser --user user2 --pass Us3r2-pass!"),
    admin("adduser-nopass", "adduser --user user3"),
    admin("listusers-after-add", "listusers"),
    admin(
        "edituser-realname",
        "edituser --userid user2 --realname Second",
    ),
    admin(
        "edituser-unknown",
        "edituser --userid nosuchuser --realname X",
    ),
    user2("user2-userinfo", "userinfo"),
    user2("user2-listdevicegroups", "listdevicegroups"),
    user2("user2-listdevices", "listdevices"),
    user2("user2-deviceinfo", "deviceinfo --id {node}"),
    user2("user2-adduser", "adduser --user user4 --pass Us3r4-pass!"),
    user2("user2-listusers", "listusers"),
    admin(
        "addusertodevicegroup",
        "addusertodevicegroup --id {group} --userid user2 --fullrights",
    ),
    admin(
        "addusertodevicegroup-unknown-group",
        "addusertodevicegroup --id nosuchgroup --userid user2 --fullrights",
    ),
    admin(
        "addusertodevicegroup-unknown-user",
        "addusertodevicegroup --id {group} --userid nosuchuser --fullrights",
    ),
    admin(
        "listusersofdevicegroup-after",
        "listusersofdevicegroup --id {group}",
    ),
    user2("user2-listdevicegroups-member", "listdevicegroups"),
    user2("user2-listdevices-member", "listdevices"),
    admin(
        "removeuserfromdevicegroup",
        "removeuserfromdevicegroup --id {group} --userid user2",
    ),
    admin(
        "removeuserfromdevicegroup-again",
        "removeuserfromdevicegroup --id {group} --userid user2",
    ),
    admin(
        "adddevicegroup-second",
        "adddevicegroup --name second --desc two",
    ),
    admin(
        "editdevicegroup-desc",
        "editdevicegroup --group second --desc changed",
    ),
    admin(
        "editdevicegroup-rename",
        "editdevicegroup --group second --name renamed",
    ),
    admin("listdevicegroups-after-edit", "listdevicegroups"),
    // Both servers accept a second group of the same name; a name then no longer
    // identifies one group.
    admin("adddevicegroup-dup", "adddevicegroup --name renamed"),
    admin(
        "editdevicegroup-ambiguous",
        "editdevicegroup --group renamed --desc x",
    ),
    admin(
        "removedevicegroup-ambiguous",
        "removedevicegroup --group renamed",
    ),
    admin(
        "editdevicegroup-unknown",
        "editdevicegroup --id nosuchgroup --desc x",
    ),
    admin("removedevicegroup", "removedevicegroup --group renamed"),
    admin(
        "removedevicegroup-unknown",
        "removedevicegroup --id nosuchgroup",
    ),
    admin("listdevicegroups-after-remove", "listdevicegroups"),
    admin(
        "editdevice-name",
        "editdevice --id {node} --name renamed-device",
    ),
    admin(
        "editdevice-desc-tags",
        "editdevice --id {node} --desc about --tags a,b",
    ),
    admin(
        "editdevice-unknown",
        "editdevice --id nosuchdevice --name x",
    ),
    admin("listdevices-after-edit", "listdevices"),
    admin(
        "addusertodevice",
        "addusertodevice --id {node} --userid user2 --fullrights",
    ),
    user2("user2-listdevices-device-member", "listdevices"),
    admin(
        "removeuserfromdevice",
        "removeuserfromdevice --id {node} --userid user2",
    ),
    admin("runcommand", "runcommand --id {node} --run true"),
    admin(
        "runcommand-unknown",
        "runcommand --id nosuchdevice --run true",
    ),
    admin(
        "runcommand-powershell",
        "runcommand --id {node} --run true --powershell",
    ),
    user2("user2-runcommand", "runcommand --id {node} --run true"),
    admin(
        "devicetoast-unknown",
        "devicetoast --id nosuchdevice --msg hello",
    ),
    admin(
        "devicemessage-unknown",
        "devicemessage --id nosuchdevice --msg hello",
    ),
    admin(
        "devicepower-unknown",
        "devicepower --id nosuchdevice --sleep",
    ),
    admin("addusergroup", "addusergroup --name team"),
    admin("listusergroups", "listusergroups"),
    admin("listusergroups-json", "listusergroups --json").capture("ugrp", first_user_group),
    admin(
        "addtousergroup-user",
        "addtousergroup --id user//user2 --groupid {ugrp}",
    ),
    admin(
        "addtousergroup-devicegroup",
        "addtousergroup --id mesh//{group} --groupid {ugrp} --rights 8",
    ),
    admin("listusergroups-members", "listusergroups"),
    user2("user2-listdevices-via-usergroup", "listdevices"),
    admin(
        "removefromusergroup-user",
        "removefromusergroup --id user//user2 --groupid {ugrp}",
    ),
    admin(
        "removeallusersfromusergroup",
        "removeallusersfromusergroup --groupid {ugrp}",
    ),
    admin("removeusergroup", "removeusergroup --groupid {ugrp}"),
    admin("listusergroups-after-remove", "listusergroups"),
    admin(
        "removeusergroup-unknown",
        "removeusergroup --groupid nosuchgroup",
    ),
    admin("logintokens", "logintokens"),
    admin("logintokens-json", "logintokens --json"),
    admin("broadcast", "broadcast --msg hello"),
    admin(
        "generateinvitelink",
        "generateinvitelink --group diff --hours 1",
    ),
    admin("devicesharing", "devicesharing --id {node}"),
    admin("report-db", "report --type db"),
    admin("listevents-device", "listevents --id {node}"),
    admin("listevents-user", "listevents --userid user2"),
    admin("listevents-limit", "listevents --limit 5"),
    admin("removeuser", "removeuser --userid user2"),
    admin("removeuser-again", "removeuser --userid user2"),
    admin("listusers-after-remove", "listusers"),
    admin("unknown-command", "nosuchcommand"),
    admin("removedevice-unknown", "removedevice --id nosuchdevice"),
    // Last: MeshCentral 1.1.55 without a web relay port stops answering after this one.
    admin("webrelay", "webrelay --id {node} --type http"),
];

/// One server under test, and what the steps found on it.
struct Side {
    url: String,
    vars: HashMap<&'static str, String>,
}

impl Side {
    async fn run(&self, step: &Step) -> String {
        let (user, pass) = match step.who {
            Who::Admin => (ADMIN, PASS),
            Who::User2 => (USER2, PASS2),
        };
        let mut args = vec![
            "--url".to_string(),
            self.url.clone(),
            "--loginuser".into(),
            user.into(),
            "--loginpass".into(),
            pass.into(),
        ];
        for word in step.args.split_whitespace() {
            let mut word = word.to_string();
            for (k, v) in &self.vars {
                word = word.replace(&format!("{{{k}}}"), v);
            }
            args.push(word);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        match meshctrl::try_run_raw(&args, RUN_TIMEOUT).await {
            Some(out) => {
                let mut text = out.stdout;
                if !out.stderr.trim().is_empty() {
                    text.push_str("\n[stderr]\n");
                    text.push_str(&out.stderr);
                }
                text
            }
            None => "<no answer>".to_string(),
        }
    }
}

/// Starts one stock agent against a side's group and waits until it is online with its OS
/// and network reported; records the node's bare id as `{node}`.
async fn agent_online(side: &mut Side, msh: &str) -> StockAgent {
    let agent = StockAgent::start(msh).await;
    let node = wait_until(
        Duration::from_secs(90),
        "the stock agent online",
        async || {
            let out = meshctrl::run(&side.url, ADMIN, PASS, &["listdevices", "--json"]).await;
            let list: Vec<Value> = serde_json::from_str(&out.stdout).unwrap_or_default();
            list.into_iter()
                .find(|d| d["conn"] == 1 && d["osdesc"].as_str().is_some_and(|s| !s.is_empty()))
                .and_then(|d| d["_id"].as_str().map(str::to_string))
                .ok_or(out.stdout)
        },
    )
    .await;
    let id = node.trim_start_matches("node//").to_string();
    // And its network report stored, which `deviceinfo` and `listdevices --details` show.
    wait_until(Duration::from_secs(60), "the network report", async || {
        let out = meshctrl::run(&side.url, ADMIN, PASS, &["deviceinfo", "--id", &id]).await;
        if out.stdout.contains("--- Networking ---") {
            Ok(())
        } else {
            Err(out.stdout)
        }
    })
    .await;
    side.vars.insert("node", id);
    agent
}

async fn group_id(url: &str) -> String {
    let out = meshctrl::run(url, ADMIN, PASS, &["listdevicegroups", "--json"]).await;
    let list: Vec<Value> = serde_json::from_str(&out.stdout).expect("group list");
    list.iter()
        .find(|g| g["name"] == "diff")
        .and_then(|g| g["_id"].as_str())
        .expect("the diff group")
        .trim_start_matches("mesh//")
        .to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn meshctrl_answers_as_meshcentral_does() {
    let (meshcentral, ironmesh) = tokio::join!(
        MeshCentral::start(ADMIN, PASS),
        TestServer::start_for_stock_agents(Db::Sqlite)
    );
    ironmesh.add_user(ADMIN, PASS, true).await;
    let mut mc = Side {
        url: meshcentral.wss_url(),
        vars: HashMap::new(),
    };
    let mut im = Side {
        url: ironmesh.wss_url(),
        vars: HashMap::new(),
    };

    // The same first group on both, made with meshctrl on MeshCentral and over the control
    // channel on ironmesh (its creation is compared below through the listings).
    let out = meshctrl::run(&mc.url, ADMIN, PASS, &["adddevicegroup", "--name", "diff"]).await;
    assert!(out.stdout.starts_with("ok"), "{out:?}");
    create_group(&ironmesh, ADMIN, PASS, "diff").await;
    mc.vars.insert("group", group_id(&mc.url).await);
    im.vars.insert("group", group_id(&im.url).await);
    let mc_msh = meshcentral.msh(mc.vars["group"].as_str()).await;
    let im_msh = fetch_msh(&ironmesh, &format!("mesh//{}", im.vars["group"])).await;
    let (_mc_agent, _im_agent) = tokio::join!(
        agent_online(&mut mc, &mc_msh),
        agent_online(&mut im, &im_msh)
    );

    let mut mc_ids = Normalizer::new(meshcentral.port);
    let mut im_ids = Normalizer::new(ironmesh.port);
    let mut report = String::from("# meshctrl: MeshCentral vs ironmesh\n\n");
    let mut differing = Vec::new();
    for step in STEPS {
        let (a, b) = tokio::join!(mc.run(step), im.run(step));
        if let Some((var, find)) = step.capture {
            for (side, output) in [(&mut mc, &a), (&mut im, &b)] {
                if let Some(value) = find(output) {
                    side.vars.insert(var, value);
                }
            }
        }
        let (a, b) = (mc_ids.normalize(&a), im_ids.normalize(&b));
        let same = a == b;
        if !same {
            differing.push(step.name);
        }
        report.push_str(&format!(
            "## {} — {}\n\n`meshctrl {}`\n\nMeshCentral:\n```\n{a}\n```\n",
            step.name,
            if same { "same" } else { "DIFFERENT" },
            step.args
        ));
        if !same {
            report.push_str(&format!("ironmesh:\n```\n{b}\n```\n"));
        }
        report.push('\n');
    }
    let dir = ironmesh_testkit::workspace_root().join("target/meshctrl-diff");
    std::fs::create_dir_all(&dir).expect("report folder");
    let report_path = dir.join("report.md");
    std::fs::write(&report_path, &report).expect("report");

    let listed = listed_differences();
    let unexplained: Vec<_> = differing
        .iter()
        .filter(|name| !listed.contains_key(**name))
        .collect();
    let now_equal: Vec<_> = listed
        .keys()
        .filter(|name| !differing.contains(&name.as_str()))
        .collect();
    let unknown: Vec<_> = listed
        .keys()
        .filter(|name| !STEPS.iter().any(|s| s.name == name.as_str()))
        .collect();
    assert!(
        unexplained.is_empty() && now_equal.is_empty() && unknown.is_empty(),
        "differences not listed in README.md: {unexplained:?}\n\
         listed but now equal (remove them from README.md): {now_equal:?}\n\
         listed but no such step: {unknown:?}\n\
         both outputs of every step: {}",
        report_path.display()
    );
}

/// README.md's table of known differences: step name → reason.
fn listed_differences() -> BTreeMap<String, String> {
    let readme = std::fs::read_to_string(ironmesh_testkit::workspace_root().join("README.md"))
        .expect("README.md");
    let start = readme
        .find("<!-- meshctrl-differences -->")
        .expect("README.md has the meshctrl-differences table");
    let end = readme[start..]
        .find("<!-- /meshctrl-differences -->")
        .expect("end of the meshctrl-differences table")
        + start;
    readme[start..end]
        .lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            // | `step` | reason |
            let name = cells.get(1)?.strip_prefix('`')?.strip_suffix('`')?;
            let reason = cells.get(2)?;
            assert!(!reason.is_empty(), "README.md: step {name} has no reason");
            Some((name.to_string(), reason.to_string()))
        })
        .collect()
}

/// Replaces what differs between two servers by nature: ids (numbered in order of first
/// appearance, so the same object keeps the same number across steps), long hex (hashes),
/// times in milliseconds, dates, the server's port.
struct Normalizer {
    port: String,
    ids: HashMap<String, usize>,
}

impl Normalizer {
    fn new(port: u16) -> Normalizer {
        Normalizer {
            port: port.to_string(),
            ids: HashMap::new(),
        }
    }

    fn normalize(&mut self, text: &str) -> String {
        let text = replace_loopback_ports(&replace_iso_times(text));
        let mut out = String::with_capacity(text.len());
        let mut token = String::new();
        for c in text.chars().chain(std::iter::once('\n')) {
            if c.is_ascii_alphanumeric() || c == '@' || c == '$' {
                token.push(c);
                continue;
            }
            if !token.is_empty() {
                let replaced = self.token(&token);
                out.push_str(&replaced);
                token.clear();
            }
            out.push(c);
        }
        out.pop();
        let lines: Vec<&str> = out.lines().map(str::trim_end).collect();
        lines.join("\n").trim().to_string()
    }

    fn token(&mut self, token: &str) -> String {
        let hex = token.chars().all(|c| c.is_ascii_hexdigit());
        let digits = token.chars().all(|c| c.is_ascii_digit());
        if token == self.port {
            "<PORT>".into()
        } else if digits && (12..=13).contains(&token.len()) {
            "<TIME>".into()
        } else if hex && token.len() >= 32 {
            "<HASH>".into()
        } else if token.len() >= 40 && !digits {
            let next = self.ids.len() + 1;
            let n = *self.ids.entry(token.to_string()).or_insert(next);
            format!("<ID{n}>")
        } else {
            token.to_string()
        }
    }
}

/// Replaces the port of every loopback address (`127.0.0.1:41234`, an agent's or the
/// server's) with `<PORT>`.
fn replace_loopback_ports(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("127.0.0.1:") {
        let (before, after) = rest.split_at(at + "127.0.0.1:".len());
        out.push_str(before);
        let digits = after.chars().take_while(char::is_ascii_digit).count();
        if digits > 0 {
            out.push_str("<PORT>");
        }
        rest = &after[digits..];
    }
    out.push_str(rest);
    out
}

/// Replaces ISO 8601 times (`2026-12-01T06:13:09.383Z`) with `<DATE>`.
fn replace_iso_times(text: &str) -> String {
    let shape = b"dddd-dd-ddTdd:dd:dd";
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < bytes.len() {
        let fits = bytes.len() - i >= shape.len()
            && shape.iter().zip(&bytes[i..]).all(|(s, b)| match s {
                b'd' => b.is_ascii_digit(),
                other => other == b,
            });
        if !fits {
            let c = text[i..].chars().next().expect("a char");
            out.push(c);
            i += c.len_utf8();
            continue;
        }
        i += shape.len();
        // Fractions of a second and the zone.
        while i < bytes.len() && (bytes[i].is_ascii_digit() || bytes[i] == b'.') {
            i += 1;
        }
        if i < bytes.len() && bytes[i] == b'Z' {
            i += 1;
        }
        out.push_str("<DATE>");
    }
    out
}
