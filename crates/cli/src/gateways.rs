//! WiFiDogX gateways: list, approve, command, captive-portal mode.

use std::process::ExitCode;

use serde_json::{json, Map, Value};

use crate::config::Store;
use crate::output::{self, table};
use crate::session::{connect, resolve_group};

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

/// `key=value` pairs; a value that parses as JSON (number, true, list…) is sent as such.
fn parse_params(pairs: &[String], json_text: Option<&str>) -> anyhow::Result<Map<String, Value>> {
    let mut params = match json_text {
        Some(t) => match serde_json::from_str::<Value>(t)? {
            Value::Object(m) => m,
            _ => anyhow::bail!("--params-json must be a JSON object"),
        },
        None => Map::new(),
    };
    for pair in pairs {
        let (k, v) = pair
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("--param needs key=value (got {pair})"))?;
        let value = serde_json::from_str(v).unwrap_or_else(|_| Value::String(v.to_string()));
        params.insert(k.to_string(), value);
    }
    Ok(params)
}

pub async fn command(
    store: &Store,
    device_id: &str,
    op: &str,
    pairs: &[String],
    json_text: Option<&str>,
    timeout: u32,
    json_out: bool,
) -> anyhow::Result<ExitCode> {
    let params = parse_params(pairs, json_text)?;
    let (_, mut client) = connect(store).await?;
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
    #[test]
    fn params() {
        let p = super::parse_params(
            &[
                "client_mac=aa:bb".into(),
                "timeout=60".into(),
                "once_auth=false".into(),
            ],
            None,
        )
        .unwrap();
        assert_eq!(p["client_mac"], "aa:bb");
        assert_eq!(p["timeout"], 60);
        assert_eq!(p["once_auth"], false);
        assert!(super::parse_params(&["novalue".into()], None).is_err());
    }
}
