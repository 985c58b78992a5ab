//! WiFiDogX gateways: list, approve, command (with the operations' parameters described,
//! typed and defaulted here), captive-portal mode.

use std::process::ExitCode;

use serde_json::{json, Map, Value};

use crate::config::Store;
use crate::output::{self, table};
use crate::session::{connect, resolve_group};
use ironmesh_client::control::ControlClient;

pub async fn list(store: &Store, json_out: bool) -> anyhow::Result<()> {
    let (_, mut client) = connect(store).await?;
    let reply = client.request(json!({"action": "wifidogs"})).await?;
    let list = reply["gateways"].as_array().cloned().unwrap_or_default();
    if json_out {
        output::json(&Value::Array(list));
        return Ok(());
    }
    if list.is_empty() {
        println!("No gateways.");
        return Ok(());
    }
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|g| {
            let gws: Vec<String> = g["gateways"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|x| format!("{}({})", x["gw_id"].as_str().unwrap_or(""), x["auth_mode"]))
                .collect();
            vec![
                g["deviceid"].as_str().unwrap_or("").to_string(),
                if g["online"] == true {
                    "online".into()
                } else {
                    "offline".into()
                },
                if g["approved"] == true {
                    "approved".into()
                } else {
                    "waiting".into()
                },
                g["generation"].as_str().unwrap_or("").to_string(),
                gws.join(" "),
                g["remoteaddr"].as_str().unwrap_or("").to_string(),
                output::time(g["lastseen"].as_i64().unwrap_or(0)),
            ]
        })
        .collect();
    table(
        &[
            "DEVICE",
            "STATE",
            "ADMISSION",
            "FIRMWARE",
            "GATEWAYS(AUTH MODE)",
            "ADDRESS",
            "LAST SEEN (UTC)",
        ],
        &rows,
    );
    Ok(())
}

pub async fn approve(store: &Store, device_id: &str, group: &str) -> anyhow::Result<()> {
    let (_, mut client) = connect(store).await?;
    let group_id = resolve_group(&mut client, group).await?["_id"].clone();
    let reply = client
        .request(json!({"action": "wifidogapprove", "deviceid": device_id, "meshid": group_id}))
        .await?;
    match reply["result"].as_str() {
        Some("ok") => {
            eprintln!("Gateway {device_id} admitted into {group}.");
            Ok(())
        }
        other => anyhow::bail!("{}", other.unwrap_or("no answer")),
    }
}

/// `ironmesh gateways [ops [OP]]`.
#[derive(clap::Subcommand)]
pub enum GatewaysCommand {
    /// The operations `ironmesh gateway` can send, or one operation's parameters.
    Ops {
        /// Show this operation's parameters.
        op: Option<String>,
    },
}

/// `ironmesh gateway DEVICE OP …`.
#[derive(clap::Args)]
pub struct CommandArgs {
    pub device_id: String,
    /// Operation, e.g. kickoff, auth, tmp_pass, shell, get_clients; `ironmesh gateways ops`
    /// lists them with their parameters.
    pub op: String,
    /// A parameter `key=value` (repeatable). The value is a string, or the number or
    /// true/false the operation's parameter takes (`ironmesh gateways ops OP`); lists are
    /// comma-separated. `key:=JSON` sends any JSON value as it is.
    #[arg(long = "param", value_name = "KEY=VALUE")]
    pub params: Vec<String>,
    /// All parameters as one JSON object (--param entries are added to it).
    #[arg(long)]
    pub params_json: Option<String>,
    /// Seconds to wait for the gateway's answer.
    #[arg(long, default_value_t = 15)]
    pub timeout: u32,
    /// First wait until the gateway is online, up to SECS seconds (60 without a value).
    #[arg(long, value_name = "SECS", num_args = 0..=1, default_missing_value = "60")]
    pub wait: Option<u64>,
}

/// What a parameter's value is, on the wire.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Text,
    Integer,
    Boolean,
    /// A list of strings (comma-separated on the command line).
    TextList,
    /// A JSON object (only as `key:=JSON`).
    Object,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Text => "text",
            Kind::Integer => "integer",
            Kind::Boolean => "true|false",
            Kind::TextList => "list (a,b,…)",
            Kind::Object => "JSON object",
        }
    }
}

/// Where a parameter's value comes from when it is not given.
#[derive(Clone, Copy, PartialEq)]
enum Fallback {
    /// It must be given.
    Required,
    /// Leave it out (the gateway has its own default, if any).
    Optional,
    /// The gateway's own device id.
    DeviceId,
    /// The gateway id the device reports, when it reports exactly one.
    GatewayId,
}

struct Param {
    name: &'static str,
    kind: Kind,
    fallback: Fallback,
    about: &'static str,
}

/// An operation of the WiFiDogX protocol (docs/protocol/wifidogx.md §4, §5).
struct Operation {
    name: &'static str,
    about: &'static str,
    params: &'static [Param],
}

const fn param(name: &'static str, kind: Kind, fallback: Fallback, about: &'static str) -> Param {
    Param {
        name,
        kind,
        fallback,
        about,
    }
}

use Fallback::{DeviceId, GatewayId, Optional, Required};
use Kind::{Boolean, Integer, Object, Text, TextList};

const CLIENT_IP: Param = param("client_ip", Text, Required, "the client's IPv4 address");
const CLIENT_MAC: Param = param("client_mac", Text, Required, "the client's MAC address");
const GW_ID: Param = param(
    "gw_id",
    Text,
    GatewayId,
    "gateway id (default: the device's, when it reports one)",
);
const DOMAINS: Param = param("domains", TextList, Required, "the whole new list");

static OPERATIONS: &[Operation] = &[
    Operation {
        name: "auth",
        about: "let a client through the captive portal",
        params: &[
            param("token", Text, Required, "the client's portal token"),
            CLIENT_IP,
            CLIENT_MAC,
            GW_ID,
            param(
                "once_auth",
                Boolean,
                Required,
                "true opens the whole gateway (portal off), not just this client",
            ),
            param(
                "client_name",
                Text,
                Optional,
                "a name for the client (≤ 64)",
            ),
        ],
    },
    Operation {
        name: "kickoff",
        about: "disconnect a client",
        params: &[
            CLIENT_IP,
            CLIENT_MAC,
            param(
                "device_id",
                Text,
                DeviceId,
                "default: the gateway's device id",
            ),
            GW_ID,
        ],
    },
    Operation {
        name: "tmp_pass",
        about: "let a client through for a while",
        params: &[
            CLIENT_MAC,
            param(
                "timeout",
                Integer,
                Optional,
                "seconds (the gateway's default: 300)",
            ),
        ],
    },
    Operation {
        name: "get_client_info",
        about: "one client's details and counters",
        params: &[param("mac", Text, Required, "the client's MAC address")],
    },
    Operation {
        name: "get_clients",
        about: "the clients",
        params: &[],
    },
    Operation {
        name: "get_firmware_info",
        about: "the firmware's release file",
        params: &[],
    },
    Operation {
        name: "firmware_upgrade",
        about: "install firmware from a URL, then reboot",
        params: &[
            param("url", Text, Required, "http(s) URL of the image (≤ 1024)"),
            param("force", Boolean, Optional, "sysupgrade -F"),
        ],
    },
    Operation {
        name: "update_device_info",
        about: "set the device's location and AP details",
        params: &[param(
            "device_info",
            Object,
            Required,
            "ap_device_id, ap_mac_address, ap_longitude, ap_latitude, location_id",
        )],
    },
    Operation {
        name: "sync_trusted_domain",
        about: "replace the trusted domains",
        params: &[DOMAINS],
    },
    Operation {
        name: "get_trusted_domains",
        about: "the trusted domains",
        params: &[],
    },
    Operation {
        name: "sync_trusted_wildcard_domains",
        about: "replace the trusted wildcard domains",
        params: &[DOMAINS],
    },
    Operation {
        name: "get_trusted_wildcard_domains",
        about: "the trusted wildcard domains",
        params: &[],
    },
    Operation {
        name: "get_sys_info",
        about: "uptime, memory, load, temperature",
        params: &[],
    },
    Operation {
        name: "get_status",
        about: "the gateway's whole status",
        params: &[],
    },
    Operation {
        name: "get_device_info",
        about: "the device's details",
        params: &[],
    },
    Operation {
        name: "shell",
        about: "run a shell command on the gateway",
        params: &[
            param("command", Text, Required, "the command line (≤ 4096)"),
            param("timeout", Integer, Optional, "seconds, at most 30"),
        ],
    },
    Operation {
        name: "reboot_device",
        about: "reboot (no answer)",
        params: &[],
    },
];

fn operation(name: &str) -> Option<&'static Operation> {
    OPERATIONS.iter().find(|o| o.name == name)
}

/// Which firmware generations take `op`, and whether they answer it.
fn support(op: &str) -> String {
    use ironmesh_proto::wifidog::{expectation, Expect, Generation};
    let one = |g: Generation| match expectation(g, op) {
        None => None,
        Some(Expect::Nothing) => Some(format!("{} (no answer)", g.name())),
        Some(_) => Some(g.name().to_string()),
    };
    [one(Generation::Legacy), one(Generation::Current)]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(", ")
}

/// `ironmesh gateways ops [OP]`.
pub fn ops(op: Option<&str>, json_out: bool) -> anyhow::Result<()> {
    let describe = |o: &Operation| {
        json!({
            "op": o.name,
            "about": o.about,
            "firmware": support(o.name),
            "params": o.params.iter().map(|p| json!({
                "name": p.name,
                "type": p.kind.name(),
                "required": p.fallback == Required,
                "about": p.about,
            })).collect::<Vec<_>>(),
        })
    };
    let Some(name) = op else {
        if json_out {
            output::json(&Value::Array(OPERATIONS.iter().map(describe).collect()));
            return Ok(());
        }
        let rows: Vec<Vec<String>> = OPERATIONS
            .iter()
            .map(|o| {
                let params: Vec<String> = o
                    .params
                    .iter()
                    .map(|p| match p.fallback {
                        Required => p.name.to_string(),
                        _ => format!("[{}]", p.name),
                    })
                    .collect();
                vec![
                    o.name.to_string(),
                    params.join(" "),
                    support(o.name),
                    o.about.to_string(),
                ]
            })
            .collect();
        table(
            &["OPERATION", "PARAMETERS", "FIRMWARE", "WHAT IT DOES"],
            &rows,
        );
        println!(
            "\nParameters in [ ] are optional. `ironmesh gateways ops OPERATION` explains one."
        );
        return Ok(());
    };
    let Some(o) = operation(name) else {
        anyhow::bail!("no operation {name:?}; `ironmesh gateways ops` lists them");
    };
    if json_out {
        output::json(&describe(o));
        return Ok(());
    }
    println!("{}: {} (firmware {})", o.name, o.about, support(o.name));
    if o.params.is_empty() {
        println!("No parameters.");
        return Ok(());
    }
    let rows: Vec<Vec<String>> = o
        .params
        .iter()
        .map(|p| {
            vec![
                p.name.to_string(),
                p.kind.name().to_string(),
                match p.fallback {
                    Required => "required",
                    Optional => "optional",
                    DeviceId | GatewayId => "defaulted",
                }
                .to_string(),
                p.about.to_string(),
            ]
        })
        .collect();
    table(&["PARAMETER", "TYPE", "USE", "MEANING"], &rows);
    let example: Vec<String> = o
        .params
        .iter()
        .filter(|p| p.fallback == Required)
        .map(|p| match p.kind {
            Object => format!("--param '{}:={{…}}'", p.name),
            _ => format!("--param {}=…", p.name),
        })
        .collect();
    println!(
        "\nExample: ironmesh gateway DEVICE {} {}",
        o.name,
        example.join(" ")
    );
    Ok(())
}

/// The parameters of one command: `--params-json`, then `key=value` (a string, or the
/// operation's declared number, boolean or list) and `key:=JSON` pairs.
fn parse_params(
    op: &str,
    pairs: &[String],
    json_text: Option<&str>,
) -> anyhow::Result<Map<String, Value>> {
    let mut params = match json_text {
        Some(t) => match serde_json::from_str::<Value>(t)
            .map_err(|e| anyhow::anyhow!("--params-json is not JSON: {e}"))?
        {
            Value::Object(m) => m,
            _ => anyhow::bail!("--params-json must be a JSON object"),
        },
        None => Map::new(),
    };
    let declared = operation(op);
    for pair in pairs {
        let (key, value) = if let Some((k, raw)) = pair.split_once(":=") {
            let value = serde_json::from_str(raw).map_err(|e| {
                anyhow::anyhow!("--param {k}:= needs a JSON value (got {raw:?}: {e})")
            })?;
            (k, value)
        } else if let Some((k, v)) = pair.split_once('=') {
            let kind = declared
                .and_then(|o| o.params.iter().find(|p| p.name == k))
                .map_or(Text, |p| p.kind);
            (k, typed(op, k, v, kind)?)
        } else {
            anyhow::bail!("--param needs key=value or key:=JSON (got {pair:?})");
        };
        anyhow::ensure!(!key.is_empty(), "--param {pair:?} has no key");
        params.insert(key.to_string(), value);
    }
    Ok(params)
}

/// A `key=value` value as the operation's parameter `key` takes it.
fn typed(op: &str, key: &str, v: &str, kind: Kind) -> anyhow::Result<Value> {
    Ok(match kind {
        Text => Value::String(v.to_string()),
        Integer => v
            .parse::<i64>()
            .map(Value::from)
            .map_err(|_| anyhow::anyhow!("{op} takes a whole number for {key} (got {v:?})"))?,
        Boolean => match v {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            _ => anyhow::bail!("{op} takes true or false for {key} (got {v:?})"),
        },
        TextList => Value::Array(
            v.split(',')
                .map(str::trim)
                .filter(|d| !d.is_empty())
                .map(|d| Value::String(d.to_string()))
                .collect(),
        ),
        Object => anyhow::bail!(
            "{op} takes a JSON object for {key}: use --param '{key}:={{\"…\": \"…\"}}'"
        ),
    })
}

/// Fills `device_id` and `gw_id` from the gateway's record where the operation takes them
/// and they were not given, then checks that every required parameter is there.
async fn complete_params(
    client: &mut ControlClient,
    device_id: &str,
    op: &str,
    params: &mut Map<String, Value>,
) -> anyhow::Result<()> {
    let Some(o) = operation(op) else {
        return Ok(());
    };
    for p in o.params {
        if params.contains_key(p.name) {
            continue;
        }
        match p.fallback {
            DeviceId => {
                params.insert(p.name.into(), device_id.into());
            }
            GatewayId => {
                let record = find(client, device_id).await?;
                let ids: Vec<&str> = record
                    .as_ref()
                    .and_then(|g| g["gateways"].as_array())
                    .into_iter()
                    .flatten()
                    .filter_map(|g| g["gw_id"].as_str())
                    .collect();
                match ids.as_slice() {
                    [one] => {
                        params.insert(p.name.into(), (*one).into());
                    }
                    [] if record.is_none() => {
                        anyhow::bail!("Unknown gateway {device_id:?} (see `ironmesh gateways`)")
                    }
                    [] => anyhow::bail!(
                        "{device_id} reports no gateway id: give one with --param {}=…",
                        p.name
                    ),
                    many => anyhow::bail!(
                        "{device_id} serves several gateway ids ({}): choose one with --param {}=…",
                        many.join(", "),
                        p.name
                    ),
                }
            }
            Required | Optional => {}
        }
    }
    let missing: Vec<&str> = o
        .params
        .iter()
        .filter(|p| p.fallback == Required && !params.contains_key(p.name))
        .map(|p| p.name)
        .collect();
    anyhow::ensure!(
        missing.is_empty(),
        "{op} needs {} (see `ironmesh gateways ops {op}`)",
        missing.join(", ")
    );
    Ok(())
}

/// The gateway's record as `wifidogs` lists it, if the caller can see it.
async fn find(client: &mut ControlClient, device_id: &str) -> anyhow::Result<Option<Value>> {
    let reply = client.request(json!({"action": "wifidogs"})).await?;
    if let Some(err) = reply["result"].as_str() {
        anyhow::bail!("{err}");
    }
    Ok(reply["gateways"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|g| g["deviceid"] == device_id)
        .cloned())
}

/// Waits until the gateway is connected, checking every half second.
async fn wait_online(client: &mut ControlClient, device_id: &str, secs: u64) -> anyhow::Result<()> {
    let until = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    let mut told = false;
    loop {
        if find(client, device_id)
            .await?
            .is_some_and(|g| g["online"] == true)
        {
            return Ok(());
        }
        if std::time::Instant::now() >= until {
            anyhow::bail!("gateway {device_id} did not come online within {secs} s");
        }
        if !told {
            eprintln!("Waiting up to {secs} s for gateway {device_id} to come online…");
            told = true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}

pub async fn command(
    store: &Store,
    args: &CommandArgs,
    json_out: bool,
) -> anyhow::Result<ExitCode> {
    let CommandArgs {
        device_id,
        op,
        timeout,
        ..
    } = args;
    let mut params = parse_params(op, &args.params, args.params_json.as_deref())?;
    let (_, mut client) = connect(store).await?;
    if let Some(secs) = args.wait {
        wait_online(&mut client, device_id, secs).await?;
    }
    complete_params(&mut client, device_id, op, &mut params).await?;
    let reply = client
        .request(json!({"action": "wifidogcmd", "deviceid": device_id, "op": op, "params": params, "timeout": timeout}))
        .await?;
    let result = reply["result"].as_str().unwrap_or("");
    if json_out {
        output::json(&reply);
    } else if let Some(answer) = reply.get("reply") {
        println!("{}", serde_json::to_string_pretty(answer)?);
    } else if result == "sent" {
        eprintln!("Sent ({op} gets no answer from this gateway).");
    }
    match result {
        "ok" | "sent" => Ok(ExitCode::SUCCESS),
        "error" => {
            eprintln!("The gateway reports an error.");
            Ok(ExitCode::FAILURE)
        }
        other => anyhow::bail!("{other}"),
    }
}

pub async fn auth_mode(
    store: &Store,
    device_id: &str,
    gw_id: &str,
    mode: u32,
) -> anyhow::Result<()> {
    let (_, mut client) = connect(store).await?;
    let reply = client
        .request(json!({"action": "wifidogauthmode", "deviceid": device_id, "gwid": gw_id, "authmode": mode}))
        .await?;
    match reply["result"].as_str() {
        Some("ok") if reply["pushed"] == true => eprintln!("Portal mode of {gw_id} set to {mode}."),
        Some("ok") => eprintln!(
            "Portal mode of {gw_id} set to {mode}; the gateway gets it when it reconnects."
        ),
        other => anyhow::bail!("{}", other.unwrap_or("no answer")),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn values_are_strings_unless_typed() {
        let p = super::parse_params(
            "tmp_pass",
            &[
                "client_mac=1e10".into(),
                "timeout=60".into(),
                "note=true".into(),
                "extra:=[1,null]".into(),
            ],
            None,
        )
        .unwrap();
        assert_eq!(p["client_mac"], "1e10", "not read as a number");
        assert_eq!(p["timeout"], 60, "tmp_pass declares timeout a number");
        assert_eq!(p["note"], "true", "undeclared: a string");
        assert_eq!(p["extra"], json!([1, null]));
        let p = super::parse_params("make_coffee", &["cups=2".into()], None).unwrap();
        assert_eq!(p["cups"], "2");
        let p = super::parse_params(
            "sync_trusted_domain",
            &["domains=a.org, b.org".into()],
            None,
        )
        .unwrap();
        assert_eq!(p["domains"], json!(["a.org", "b.org"]));
    }

    #[test]
    fn bad_values_are_named() {
        let err = |op: &str, pair: &str| {
            super::parse_params(op, &[pair.to_string()], None)
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            err("shell", "novalue"),
            "--param needs key=value or key:=JSON (got \"novalue\")"
        );
        assert_eq!(
            err("shell", "timeout=soon"),
            "shell takes a whole number for timeout (got \"soon\")"
        );
        assert_eq!(
            err("auth", "once_auth=yes"),
            "auth takes true or false for once_auth (got \"yes\")"
        );
        assert!(err("x", "a:={").starts_with("--param a:= needs a JSON value"));
        assert!(err("update_device_info", "device_info=x").contains("use --param 'device_info:="));
        assert!(super::parse_params("x", &[], Some("[1]")).is_err());
    }
}
