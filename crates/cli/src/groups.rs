//! Device groups: list, add, rename, remove, and their members (users and user groups)
//! with rights given by name.

use clap::Subcommand;
use ironmesh_client::control::ControlClient;
use ironmesh_proto::ids::{normalize_id, IdKind};
use ironmesh_proto::rights::MeshRights;
use serde_json::{json, Value};

use crate::config::Store;
use crate::output::{self, table};
use crate::session::{connect, resolve_group};

#[derive(Subcommand)]
pub enum GroupsCommand {
    /// List the device groups you see, with your rights in each (the default).
    List,
    /// Create a device group for agents.
    Add {
        name: String,
        #[arg(long)]
        desc: Option<String>,
    },
    /// Give a device group (name or id) a new name.
    Rename { group: String, name: String },
    /// Remove a device group (name or id) and its devices.
    Remove { group: String },
    /// The members of a device group with their rights; or add, change or remove one.
    Members {
        group: String,
        #[command(subcommand)]
        change: Option<MembersCommand>,
    },
}

#[derive(Subcommand)]
pub enum MembersCommand {
    /// Add users (names or ids) or user groups (ids, `ugrp//…`), or change the rights of
    /// members already there.
    Add {
        #[arg(required = true)]
        members: Vec<String>,
        /// `full`, `none`, or rights by name separated by commas (e.g.
        /// `remotecontrol,wakedevices,nodesktop`; an unknown name lists them all).
        #[arg(long)]
        rights: String,
    },
    /// Remove members (names or ids).
    Remove {
        #[arg(required = true)]
        members: Vec<String>,
    },
}

pub async fn groups(store: &Store, cmd: GroupsCommand, json: bool) -> anyhow::Result<()> {
    let (_, mut client) = connect(store).await?;
    match cmd {
        GroupsCommand::List => list(&mut client, json).await,
        GroupsCommand::Add { name, desc } => {
            let reply = client
                .request(json!({
                    "action": "createmesh",
                    "meshname": name,
                    "meshtype": 2,
                    "desc": desc.unwrap_or_default(),
                }))
                .await?;
            check(&reply, &name)?;
            let id = reply["meshid"].as_str().unwrap_or("");
            done(json, &reply, &format!("added {name} ({})", bare(id)));
            Ok(())
        }
        GroupsCommand::Rename { group, name } => {
            let id = group_id(&mut client, &group).await?;
            let reply = client
                .request(json!({"action": "editmesh", "meshid": id, "meshname": name}))
                .await?;
            check(&reply, &group)?;
            done(json, &reply, &format!("renamed {group} to {name}"));
            Ok(())
        }
        GroupsCommand::Remove { group } => {
            let id = group_id(&mut client, &group).await?;
            let reply = client
                .request(json!({"action": "deletemesh", "meshid": id}))
                .await?;
            check(&reply, &group)?;
            done(json, &reply, &format!("removed {group}"));
            Ok(())
        }
        GroupsCommand::Members {
            group,
            change: None,
        } => list_members(&mut client, &group, json).await,
        GroupsCommand::Members {
            group,
            change: Some(MembersCommand::Add { members, rights }),
        } => {
            let rights = parse_rights(&rights)?;
            let id = group_id(&mut client, &group).await?;
            let ids = members
                .iter()
                .map(|m| member_id(m))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let reply = client
                .request(json!({
                    "action": "addmeshuser",
                    "meshid": id,
                    "userids": ids,
                    "meshadmin": rights,
                }))
                .await?;
            if json {
                output::json(&reply);
            }
            let added = reply["success"].as_u64().unwrap_or(0);
            if reply["failed"].as_u64().unwrap_or(0) > 0 || added == 0 {
                let text = reply["result"].as_str().unwrap_or("refused");
                anyhow::bail!("{group}: {}", explain(text));
            }
            if !json {
                println!(
                    "{group}: {} now with rights {}",
                    members.join(", "),
                    rights_text(rights)
                );
            }
            Ok(())
        }
        GroupsCommand::Members {
            group,
            change: Some(MembersCommand::Remove { members }),
        } => {
            let id = group_id(&mut client, &group).await?;
            for m in &members {
                let reply = client
                    .request(
                        json!({"action": "removemeshuser", "meshid": id, "userid": member_id(m)?}),
                    )
                    .await?;
                check(&reply, &format!("{group}: {m}"))?;
            }
            if !json {
                println!("{group}: removed {}", members.join(", "));
            } else {
                output::json(&json!({"result": "ok", "removed": members}));
            }
            Ok(())
        }
    }
}

async fn list(client: &mut ControlClient, json: bool) -> anyhow::Result<()> {
    let reply = client.request(json!({"action": "meshes"})).await?;
    let meshes = reply["meshes"].as_array().cloned().unwrap_or_default();
    if json {
        output::json(&Value::Array(meshes));
        return Ok(());
    }
    let me = client.user_info["_id"].as_str().unwrap_or("").to_string();
    let rows: Vec<Vec<String>> = meshes
        .iter()
        .map(|m| {
            let rights = m["links"][&me]["rights"].as_u64();
            vec![
                m["name"].as_str().unwrap_or("").to_string(),
                rights
                    .map(|r| rights_text(r as u32))
                    .unwrap_or_else(|| "site administrator".into()),
                bare(m["_id"].as_str().unwrap_or("")).to_string(),
            ]
        })
        .collect();
    if rows.is_empty() {
        println!("No device groups.");
    } else {
        table(&["NAME", "YOUR RIGHTS", "ID"], &rows);
    }
    Ok(())
}

/// The members of one group as `meshes` lists them in its `links`: users and user groups.
async fn list_members(client: &mut ControlClient, group: &str, json: bool) -> anyhow::Result<()> {
    let record = resolve_group(client, group).await?;
    let links = record["links"].as_object().cloned().unwrap_or_default();
    if json {
        let members: Vec<Value> = links
            .iter()
            .map(|(id, l)| {
                let rights = l["rights"].as_u64().unwrap_or(0) as u32;
                json!({"id": id, "name": l["name"], "rights": rights, "rightnames": rights_names(rights)})
            })
            .collect();
        output::json(&Value::Array(members));
        return Ok(());
    }
    let rows: Vec<Vec<String>> = links
        .iter()
        .map(|(id, l)| {
            let kind = if id.starts_with("ugrp/") {
                "user group"
            } else {
                "user"
            };
            vec![
                l["name"].as_str().unwrap_or("").to_string(),
                kind.to_string(),
                rights_text(l["rights"].as_u64().unwrap_or(0) as u32),
                id.clone(),
            ]
        })
        .collect();
    if rows.is_empty() {
        println!("No members.");
    } else {
        table(&["NAME", "KIND", "RIGHTS", "ID"], &rows);
    }
    Ok(())
}

async fn group_id(client: &mut ControlClient, group: &str) -> anyhow::Result<String> {
    let record = resolve_group(client, group).await?;
    Ok(record["_id"].as_str().unwrap_or("").to_string())
}

/// A member as the command line names it: a user name or id, or a user group id
/// (`ugrp//…`, `ugrp/domain/…`).
fn member_id(name: &str) -> anyhow::Result<String> {
    let kind = if name.starts_with("ugrp/") {
        IdKind::UserGroup
    } else {
        IdKind::User
    };
    normalize_id(kind, name).map_err(|e| anyhow::anyhow!("{name}: {e}"))
}

/// Rights by name (`MeshRights::NAMES`), `full`, `none`, or a number.
pub fn parse_rights(text: &str) -> anyhow::Result<u32> {
    match text.trim() {
        "full" => return Ok(MeshRights::FULL),
        "none" | "" => return Ok(0),
        t => {
            if let Ok(n) = t.parse::<u32>() {
                return Ok(n);
            }
        }
    }
    let mut bits = 0;
    for name in text.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        match MeshRights::NAMES.iter().find(|(_, n)| *n == name) {
            Some((bit, _)) => bits |= bit,
            None => {
                let known: Vec<&str> = MeshRights::NAMES.iter().map(|(_, n)| *n).collect();
                anyhow::bail!(
                    "unknown right {name:?}; rights are full, none, or some of: {}",
                    known.join(", ")
                )
            }
        }
    }
    Ok(bits)
}

fn rights_names(rights: u32) -> Vec<&'static str> {
    if rights == MeshRights::FULL {
        return vec!["full"];
    }
    MeshRights::NAMES
        .iter()
        .filter(|(bit, _)| rights & bit != 0)
        .map(|(_, n)| *n)
        .collect()
}

fn rights_text(rights: u32) -> String {
    let names = rights_names(rights);
    if names.is_empty() {
        "none".into()
    } else {
        names.join(",")
    }
}

fn bare(id: &str) -> &str {
    id.trim_start_matches("mesh//")
}

/// What to do about a refusal the server words as MeshCentral does.
fn explain(text: &str) -> String {
    match text {
        "Access denied" | "Permission denied" => {
            format!("{text}: this needs the right to manage the group's users, and you can only give rights you hold")
        }
        "Nothing done" => "Nothing done: no such user or user group".into(),
        t => t.to_string(),
    }
}

fn check(reply: &Value, about: &str) -> anyhow::Result<()> {
    match reply["result"].as_str() {
        Some("ok") | None => Ok(()),
        Some(r) => anyhow::bail!("{about}: {}", explain(r)),
    }
}

fn done(json: bool, reply: &Value, text: &str) {
    if json {
        output::json(reply);
    } else {
        println!("{text}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rights_by_name_number_full_and_none() {
        assert_eq!(parse_rights("full").unwrap(), MeshRights::FULL);
        assert_eq!(parse_rights("none").unwrap(), 0);
        assert_eq!(parse_rights("12").unwrap(), 12);
        assert_eq!(
            parse_rights("remotecontrol, wakedevices").unwrap(),
            MeshRights::REMOTE_CONTROL | MeshRights::WAKE_DEVICE
        );
        let err = parse_rights("remotecontrol,fly").unwrap_err().to_string();
        assert!(
            err.contains("\"fly\"") && err.contains("wakedevices"),
            "{err}"
        );
    }

    #[test]
    fn names_round_trip() {
        let bits = MeshRights::REMOTE_CONTROL | MeshRights::NO_DESKTOP;
        assert_eq!(parse_rights(&rights_text(bits)).unwrap(), bits);
        assert_eq!(rights_text(0), "none");
        assert_eq!(rights_text(MeshRights::FULL), "full");
    }
}
