//! Accounts: `users`, `usergroups`, `tokens` and `passwd`, through the control channel's
//! account actions (the caller needs the site rights each one asks for).

use std::io::{BufRead, IsTerminal};

use clap::Subcommand;
use serde_json::{json, Value};

use crate::config::Store;
use crate::output::{self, table};
use crate::session::connect;

/// The LOCKED site right: the account cannot sign in.
const LOCKED: u64 = 32;

#[derive(Subcommand)]
pub enum UsersCommand {
    /// List accounts (the default).
    List,
    /// Create an account; the password is asked for, or read from standard input.
    Add {
        name: String,
        #[arg(long)]
        email: Option<String>,
        /// Full site administrator.
        #[arg(long)]
        admin: bool,
        #[arg(long)]
        password_stdin: bool,
    },
    /// Remove an account.
    Remove { name: String },
    /// Set another account's password.
    Passwd {
        name: String,
        #[arg(long)]
        password_stdin: bool,
    },
    /// Lock an account: it cannot sign in, and its open sessions end.
    Disable { name: String },
    /// Unlock an account.
    Enable { name: String },
}

#[derive(Subcommand)]
pub enum UserGroupsCommand {
    /// List user groups with their users and device groups (the default).
    List,
    /// Create a user group.
    Add {
        name: String,
        #[arg(long)]
        desc: Option<String>,
    },
    /// Remove a user group (name or id).
    Remove { group: String },
    /// Add or remove users of a user group.
    #[command(subcommand)]
    Members(MembersCommand),
}

#[derive(Subcommand)]
pub enum MembersCommand {
    /// Add users (names or ids) to a user group.
    Add {
        group: String,
        #[arg(required = true)]
        users: Vec<String>,
    },
    /// Remove users (names or ids) from a user group.
    Remove {
        group: String,
        #[arg(required = true)]
        users: Vec<String>,
    },
}

#[derive(Subcommand)]
pub enum TokensCommand {
    /// List your login tokens (the default).
    List,
    /// Revoke login tokens by name (every token of that name) or token user (`~t:…`).
    Revoke {
        #[arg(required = true)]
        names: Vec<String>,
    },
}

/// A refusal's text, if the reply is one.
fn refusal(reply: &Value) -> Option<String> {
    match reply["result"].as_str() {
        Some(r) if reply["failed"] == true || (r != "ok" && !r.starts_with("Added")) => {
            Some(r.to_string())
        }
        _ => None,
    }
}

fn check(reply: &Value) -> anyhow::Result<()> {
    match refusal(reply) {
        Some(r) => anyhow::bail!("{r}"),
        None => Ok(()),
    }
}

/// Like `check`, but a refusal for lack of rights says which site right the command
/// needs, and other refusals name what was asked about (`about`).
fn check_needing(reply: &Value, right: &str, about: &str) -> anyhow::Result<()> {
    match refusal(reply) {
        Some(r) if r == "Access denied" || r == "Permission denied" => {
            anyhow::bail!("{r}: this needs the site right to {right}")
        }
        Some(r) => anyhow::bail!("{about}: {r}"),
        None => Ok(()),
    }
}

const MANAGE_USERS: &str = "manage users";
const MANAGE_USER_GROUPS: &str = "manage user groups";

fn read_secret(prompt: &str, from_stdin: bool) -> anyhow::Result<String> {
    if from_stdin || !std::io::stdin().is_terminal() {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        return Ok(line.trim_end_matches(['\r', '\n']).to_string());
    }
    Ok(rpassword::prompt_password(prompt)?)
}

pub async fn users(store: &Store, cmd: UsersCommand, json: bool) -> anyhow::Result<()> {
    let (_, mut client) = connect(store).await?;
    match cmd {
        UsersCommand::List => {
            let reply = client.request(json!({"action": "users"})).await?;
            if let Some(err) = reply["result"].as_str() {
                anyhow::bail!("{err}: listing users needs the site right to manage users");
            }
            let users = reply["users"].as_array().cloned().unwrap_or_default();
            if json {
                output::json(&Value::Array(users));
                return Ok(());
            }
            let rows: Vec<Vec<String>> = users
                .iter()
                .map(|u| {
                    let site = u["siteadmin"].as_u64().unwrap_or(0);
                    vec![
                        u["name"].as_str().unwrap_or("").to_string(),
                        u["email"].as_str().unwrap_or("").to_string(),
                        if site == u32::MAX as u64 {
                            "administrator".into()
                        } else if site == 0 {
                            String::new()
                        } else {
                            format!("rights {site}")
                        },
                        if site != u32::MAX as u64 && site & LOCKED != 0 {
                            "disabled".into()
                        } else {
                            "enabled".into()
                        },
                        u["_id"].as_str().unwrap_or("").to_string(),
                    ]
                })
                .collect();
            table(&["NAME", "EMAIL", "SITE", "STATE", "ID"], &rows);
            return Ok(());
        }
        UsersCommand::Add {
            name,
            email,
            admin,
            password_stdin,
        } => {
            let pass = read_secret("Password for the new account: ", password_stdin)?;
            let mut req = json!({"action": "adduser", "username": name, "pass": pass});
            if let Some(e) = email {
                req["email"] = e.into();
            }
            if admin {
                req["siteadmin"] = u32::MAX.into();
            }
            let reply = client.request(req).await?;
            check_needing(&reply, MANAGE_USERS, &name)?;
            // The reply is MeshCentral's bare `ok`; the id is user// + the lower-cased name.
            done(
                json,
                &reply,
                &format!("added user//{}", name.to_lowercase()),
            );
        }
        UsersCommand::Remove { name } => {
            let reply = client
                .request(json!({"action": "deleteuser", "userid": name}))
                .await?;
            check_needing(&reply, MANAGE_USERS, &name)?;
            done(json, &reply, &format!("removed {name}"));
        }
        UsersCommand::Passwd {
            name,
            password_stdin,
        } => {
            let pass = read_secret("New password: ", password_stdin)?;
            let reply = client
                .request(json!({"action": "changeuserpass", "userid": name, "pass": pass}))
                .await?;
            check_needing(&reply, MANAGE_USERS, &name)?;
            done(json, &reply, &format!("password of {name} changed"));
        }
        UsersCommand::Disable { name } => set_locked(&mut client, &name, true, json).await?,
        UsersCommand::Enable { name } => set_locked(&mut client, &name, false, json).await?,
    }
    Ok(())
}

/// Sets or clears the LOCKED bit, keeping the account's other site rights.
async fn set_locked(
    client: &mut ironmesh_client::control::ControlClient,
    name: &str,
    locked: bool,
    json: bool,
) -> anyhow::Result<()> {
    let id = user_id(name)?;
    let reply = client.request(json!({"action": "users"})).await?;
    if let Some(err) = reply["result"].as_str() {
        anyhow::bail!("{err}: this needs the site right to manage users");
    }
    let Some(user) = reply["users"]
        .as_array()
        .and_then(|l| l.iter().find(|u| u["_id"] == id.as_str()))
    else {
        anyhow::bail!("{name}: User does not exists");
    };
    let site = user["siteadmin"].as_u64().unwrap_or(0);
    // Restrictions do not apply to full administrators (the server ignores the bit).
    if locked && site == u32::MAX as u64 {
        anyhow::bail!(
            "{name} is a full administrator, who cannot be disabled; take full administration away first"
        );
    }
    let wanted = if locked {
        site | LOCKED
    } else {
        site & !LOCKED
    };
    let reply = client
        .request(json!({"action": "edituser", "userid": id, "siteadmin": wanted}))
        .await?;
    check_needing(&reply, MANAGE_USERS, name)?;
    let what = if locked { "disabled" } else { "enabled" };
    done(json, &reply, &format!("{name} {what}"));
    Ok(())
}

fn done(json: bool, reply: &Value, text: &str) {
    if json {
        output::json(reply);
    } else {
        println!("{text}");
    }
}

/// A user group named by id or unique name: its id and its record (for callers without
/// the right to manage user groups, the name only).
async fn resolve_user_group(
    client: &mut ironmesh_client::control::ControlClient,
    wanted: &str,
) -> anyhow::Result<(String, Value)> {
    let groups = list_user_groups(client).await?;
    let matches: Vec<(String, Value)> = groups
        .into_iter()
        .filter(|(id, g)| id == wanted || g["name"] == wanted)
        .collect();
    match <[_; 1]>::try_from(matches) {
        Ok([one]) => Ok(one),
        Err(m) if m.is_empty() => anyhow::bail!("no user group named {wanted}"),
        Err(_) => anyhow::bail!("several user groups are named {wanted}; use the id"),
    }
}

/// Every user group, by id (`usergroups` answers `null` when there are none).
async fn list_user_groups(
    client: &mut ironmesh_client::control::ControlClient,
) -> anyhow::Result<serde_json::Map<String, Value>> {
    let reply = client.request(json!({"action": "usergroups"})).await?;
    check(&reply)?;
    Ok(reply["ugroups"].as_object().cloned().unwrap_or_default())
}

/// The user id for a name or id as given on the command line.
fn user_id(name: &str) -> anyhow::Result<String> {
    ironmesh_proto::ids::normalize_id(ironmesh_proto::ids::IdKind::User, name)
        .map_err(|e| anyhow::anyhow!("{name}: {e}"))
}

/// Whether a user group record (the full form) lists `user` (an id) among its users.
fn has_member(group: &Value, user: &str) -> bool {
    group["links"].get(user).is_some()
}

pub async fn user_groups(store: &Store, cmd: UserGroupsCommand, json: bool) -> anyhow::Result<()> {
    let (_, mut client) = connect(store).await?;
    match cmd {
        UserGroupsCommand::List => {
            let groups = list_user_groups(&mut client).await?;
            if json {
                output::json(&Value::Array(groups.values().cloned().collect()));
                return Ok(());
            }
            let rows: Vec<Vec<String>> = groups
                .iter()
                .map(|(id, g)| {
                    let links = g["links"].as_object().cloned().unwrap_or_default();
                    let of = |prefix: &str, rights: bool| {
                        links
                            .iter()
                            .filter(|(k, _)| k.starts_with(prefix))
                            .map(|(_, l)| {
                                let name = l["name"].as_str().unwrap_or("").to_string();
                                if rights {
                                    format!("{name} ({})", l["rights"])
                                } else {
                                    name
                                }
                            })
                            .collect::<Vec<_>>()
                            .join(",")
                    };
                    vec![
                        g["name"].as_str().unwrap_or("").to_string(),
                        of("user/", false),
                        of("mesh/", true),
                        id.clone(),
                    ]
                })
                .collect();
            table(&["NAME", "USERS", "DEVICE GROUPS", "ID"], &rows);
        }
        UserGroupsCommand::Add { name, desc } => {
            let reply = client
                .request(json!({"action": "createusergroup", "name": name, "desc": desc.unwrap_or_default()}))
                .await?;
            check_needing(&reply, MANAGE_USER_GROUPS, &name)?;
            done(json, &reply, reply["ugrpid"].as_str().unwrap_or(""));
        }
        UserGroupsCommand::Remove { group } => {
            let (id, _) = resolve_user_group(&mut client, &group).await?;
            let reply = client
                .request(json!({"action": "deleteusergroup", "ugrpid": id}))
                .await?;
            check_needing(&reply, MANAGE_USER_GROUPS, &group)?;
            done(json, &reply, &format!("removed {group}"));
        }
        UserGroupsCommand::Members(MembersCommand::Add { group, users }) => {
            let (id, _) = resolve_user_group(&mut client, &group).await?;
            let ids = users
                .iter()
                .map(|u| user_id(u))
                .collect::<anyhow::Result<Vec<_>>>()?;
            // The server takes names without `user//`, and counts the unknown ones.
            let names: Vec<&str> = ids.iter().map(|i| i.trim_start_matches("user//")).collect();
            let reply = client
                .request(json!({"action": "addusertousergroup", "ugrpid": id, "usernames": names}))
                .await?;
            check_needing(&reply, MANAGE_USER_GROUPS, &group)?;
            if json {
                output::json(&reply);
            }
            if reply["failed"].as_u64().unwrap_or(0) > 0 {
                // Which ones: those the group does not list now.
                let after = list_user_groups(&mut client).await?;
                let record = after.get(&id).cloned().unwrap_or_default();
                let unknown: Vec<&str> = users
                    .iter()
                    .zip(&ids)
                    .filter(|(_, i)| !has_member(&record, i))
                    .map(|(u, _)| u.as_str())
                    .collect();
                anyhow::bail!(
                    "added {} user(s) to {group}; unknown user(s): {}",
                    reply["added"],
                    unknown.join(", ")
                );
            }
            if !json {
                println!("added {} user(s) to {group}", reply["added"]);
            }
        }
        UserGroupsCommand::Members(MembersCommand::Remove { group, users }) => {
            let (id, record) = resolve_user_group(&mut client, &group).await?;
            let ids = users
                .iter()
                .map(|u| user_id(u))
                .collect::<anyhow::Result<Vec<_>>>()?;
            // The server answers `ok` for a user not in the group: say so instead, before
            // removing anyone. (Without the right to see the users, the server refuses.)
            if record.get("links").is_some() {
                if let Some((user, _)) = users
                    .iter()
                    .zip(&ids)
                    .find(|(_, i)| !has_member(&record, i))
                {
                    anyhow::bail!("{user} is not a member of {group}");
                }
            }
            for user in &ids {
                let reply = client
                    .request(
                        json!({"action": "removeuserfromusergroup", "ugrpid": id, "userid": user}),
                    )
                    .await?;
                check_needing(&reply, MANAGE_USER_GROUPS, &group)?;
            }
            done(
                json,
                &json!({"removed": ids}),
                &format!("removed {} from {group}", users.join(", ")),
            );
        }
    }
    Ok(())
}

pub async fn tokens(store: &Store, cmd: TokensCommand, json: bool) -> anyhow::Result<()> {
    let (_, mut client) = connect(store).await?;
    let remove = match &cmd {
        TokensCommand::List => Vec::new(),
        TokensCommand::Revoke { names } => {
            anyhow::ensure!(!names.is_empty(), "name the tokens to revoke");
            names.clone()
        }
    };
    let before = client.request(json!({"action": "loginTokens"})).await?;
    check(&before)?;
    let known = before["loginTokens"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    // The server removes tokens by their user name (`~t:…`); a name given here may be
    // either that or the token's name, which several tokens may share.
    let mut remove_users: Vec<String> = Vec::new();
    for wanted in &remove {
        let matching: Vec<String> = known
            .iter()
            .filter(|t| t["name"] == wanted.as_str() || t["tokenUser"] == wanted.as_str())
            .filter_map(|t| t["tokenUser"].as_str().map(str::to_string))
            .collect();
        if matching.is_empty() {
            anyhow::bail!("no login token named {wanted}");
        }
        remove_users.extend(matching);
    }
    let reply = client
        .request(json!({"action": "loginTokens", "remove": remove_users}))
        .await?;
    check(&reply)?;
    let tokens = reply["loginTokens"].as_array().cloned().unwrap_or_default();
    if json {
        output::json(&Value::Array(tokens));
        return Ok(());
    }
    if let TokensCommand::Revoke { names } = cmd {
        let still: Vec<&str> = tokens
            .iter()
            .filter_map(|t| t["tokenUser"].as_str())
            .filter(|u| remove_users.iter().any(|r| r == u))
            .collect();
        anyhow::ensure!(still.is_empty(), "not revoked: {}", still.join(", "));
        println!("revoked {}", names.join(", "));
        return Ok(());
    }
    let rows: Vec<Vec<String>> = tokens
        .iter()
        .map(|t| {
            let expire = t["expire"].as_i64().unwrap_or(0);
            vec![
                t["name"].as_str().unwrap_or("").to_string(),
                t["tokenUser"].as_str().unwrap_or("").to_string(),
                output::time(t["created"].as_i64().unwrap_or(0)),
                if expire == 0 {
                    "never".into()
                } else {
                    output::time(expire)
                },
            ]
        })
        .collect();
    table(&["NAME", "USER", "CREATED", "EXPIRES"], &rows);
    Ok(())
}

/// Changes the signed-in user's own password: the current one, then the new one (two
/// lines on standard input with --password-stdin).
pub async fn passwd(store: &Store, password_stdin: bool) -> anyhow::Result<()> {
    let old = read_secret("Current password: ", password_stdin)?;
    let new = read_secret("New password: ", password_stdin)?;
    let (_, mut client) = connect(store).await?;
    let reply = client
        .request(json!({"action": "changepassword", "oldpass": old, "newpass": new}))
        .await?;
    check(&reply)?;
    // The change revokes every login token of the account, the stored one included.
    println!("password changed; sign in again with `ironmesh login`");
    Ok(())
}
