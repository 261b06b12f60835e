//! Administrative commands that work on a data dir: users, API keys, backup, restore, reindex,
//! configuration checks.

use std::io::BufRead;
use std::path::{Path, PathBuf};

use clap::Subcommand;

use super::Cli;
use crate::auth::{self, Actor, UserPatch};
use crate::config::Config;
use crate::http::{Role, Scope};

/// `bulwark user ...`
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add a user. The password is read from stdin with --password-stdin, else generated and printed.
    Add {
        email: String,
        /// super-admin, admin or read-only.
        #[arg(long, default_value = "read-only")]
        role: String,
        /// Read the password from the first line of stdin.
        #[arg(long)]
        password_stdin: bool,
    },
    /// List users.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Change a user's role.
    SetRole { email: String, role: String },
    /// Disable a user (they cannot sign in; their keys stop working).
    Disable { email: String },
    /// Enable a disabled user.
    Enable { email: String },
    /// Set a user's password (read from stdin with --password-stdin, else generated and printed).
    SetPassword {
        email: String,
        #[arg(long)]
        password_stdin: bool,
    },
}

/// `bulwark apikey ...`
#[derive(Debug, Subcommand)]
pub enum ApiKeyCommand {
    /// Create a key for a user and print it (only this once).
    Create {
        /// Owner's email.
        #[arg(long)]
        user: String,
        /// A name to recognize it by.
        #[arg(long)]
        name: String,
        /// Scopes: read, admin, scanner, kube-bench, kube-hunter, falco, sensor, metrics.
        #[arg(long = "scope", required = true)]
        scopes: Vec<String>,
    },
    /// List keys (never the keys themselves).
    List,
    /// Revoke a key by id.
    Revoke { id: u64 },
}

fn config(cli: &Cli) -> anyhow::Result<Config> {
    cli.load_config(None)
        .map_err(|e| anyhow::anyhow!("configuration is not valid:\n{e}"))
}

fn parse_role(s: &str) -> anyhow::Result<Role> {
    Role::parse(s)
        .ok_or_else(|| anyhow::anyhow!("unknown role '{s}': use super-admin, admin or read-only"))
}

fn password_from(stdin: bool) -> anyhow::Result<(String, bool)> {
    if stdin {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        Ok((line.trim_end_matches(['\r', '\n']).to_string(), false))
    } else {
        Ok((auth::random_password(), true))
    }
}

fn user_id(store: &crate::store::Store, email: &str) -> anyhow::Result<u64> {
    Ok(auth::find_user(store, email)?
        .ok_or_else(|| anyhow::anyhow!("no user with email {email}"))?
        .id)
}

/// `bulwark user ...`
pub fn user(cli: &Cli, cmd: &UserCommand) -> anyhow::Result<i32> {
    let cfg = config(cli)?;
    let store = crate::app::open_store(&cfg.data_dir)?;
    let cli_actor = Actor::cli();
    match cmd {
        UserCommand::Add {
            email,
            role,
            password_stdin,
        } => {
            let role = parse_role(role)?;
            let (pw, generated) = password_from(*password_stdin)?;
            let u = auth::create_user(&store, &cli_actor, email, &pw, role)?;
            println!("created {} ({}) with id {}", u.email, u.role, u.id);
            if generated {
                println!("password: {pw}");
            }
        }
        UserCommand::List { json } => {
            let users = auth::list_users(&store)?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&users)?);
            } else {
                println!("{:<5} {:<40} {:<12} STATUS", "ID", "EMAIL", "ROLE");
                for u in users {
                    println!(
                        "{:<5} {:<40} {:<12} {}",
                        u.id,
                        u.email,
                        u.role.as_str(),
                        if u.disabled { "disabled" } else { "active" }
                    );
                }
            }
        }
        UserCommand::SetRole { email, role } => {
            let patch = UserPatch {
                role: Some(parse_role(role)?),
                ..Default::default()
            };
            let u = auth::update_user(&store, &cli_actor, user_id(&store, email)?, &patch)?;
            println!("{} is now {}", u.email, u.role);
        }
        UserCommand::Disable { email } | UserCommand::Enable { email } => {
            let disabled = matches!(cmd, UserCommand::Disable { .. });
            let patch = UserPatch {
                disabled: Some(disabled),
                ..Default::default()
            };
            let u = auth::update_user(&store, &cli_actor, user_id(&store, email)?, &patch)?;
            println!(
                "{} is now {}",
                u.email,
                if u.disabled { "disabled" } else { "enabled" }
            );
        }
        UserCommand::SetPassword {
            email,
            password_stdin,
        } => {
            let (pw, generated) = password_from(*password_stdin)?;
            let patch = UserPatch {
                password: Some(pw.clone()),
                ..Default::default()
            };
            let u = auth::update_user(&store, &cli_actor, user_id(&store, email)?, &patch)?;
            println!("password of {} changed", u.email);
            if generated {
                println!("password: {pw}");
            }
        }
    }
    Ok(0)
}

/// `bulwark apikey ...`
pub fn apikey(cli: &Cli, cmd: &ApiKeyCommand) -> anyhow::Result<i32> {
    let cfg = config(cli)?;
    let store = crate::app::open_store(&cfg.data_dir)?;
    match cmd {
        ApiKeyCommand::Create { user, name, scopes } => {
            let scopes = scopes
                .iter()
                .map(|s| Scope::parse(s).ok_or_else(|| anyhow::anyhow!("unknown scope '{s}'")))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let k =
                auth::create_api_key(&store, &Actor::cli(), user_id(&store, user)?, name, &scopes)?;
            println!("{}", k.key);
            eprintln!("created key {} ({}); shown only this once", k.id, k.name);
        }
        ApiKeyCommand::List => {
            for k in auth::list_api_keys(&store, None)? {
                let scopes: Vec<&str> = k.scopes.iter().map(|s| s.as_str()).collect();
                let state = if k.revoked_at.is_some() {
                    "revoked"
                } else {
                    "active"
                };
                println!(
                    "{:<5} user {:<4} {:<24} {}… {:<8} {}",
                    k.id,
                    k.user_id,
                    k.name,
                    k.prefix,
                    state,
                    scopes.join(",")
                );
            }
        }
        ApiKeyCommand::Revoke { id } => {
            let k = auth::revoke_api_key(&store, &Actor::cli(), *id)?;
            println!("revoked key {} ({})", k.id, k.name);
        }
    }
    Ok(0)
}

/// `bulwark backup FILE`: an online, consistent copy.
pub fn backup(cli: &Cli, file: &Path) -> anyhow::Result<i32> {
    let cfg = config(cli)?;
    let r = crate::store::backup_to_file(&cfg.data_dir, file)?;
    println!(
        "wrote {} ({} tables, {} entries, schema {})",
        r.path.display(),
        r.tables,
        r.entries,
        r.schema_version
    );
    // Stored secrets open only with the appliance key, which lives outside the database.
    if let Some(key) = crate::secrets::backup_key(&cfg.data_dir, file)? {
        println!(
            "wrote the appliance key to {} (needed to restore stored credentials; keep it as safe as the backup)",
            key.display()
        );
    }
    Ok(0)
}

/// `bulwark restore FILE`: the appliance must be stopped; the search index is rebuilt on start.
pub fn restore(cli: &Cli, file: &Path) -> anyhow::Result<i32> {
    let cfg = config(cli)?;
    let r = crate::store::restore_from_file(file, &cfg.data_dir, &crate::app::migrations())?;
    let index = crate::search::Search::dir(&cfg.data_dir);
    if index.exists() {
        std::fs::remove_dir_all(&index)?;
    }
    if let Some(key) = crate::secrets::restore_key(file, &cfg.data_dir)? {
        println!("restored the appliance key into {}", key.display());
    }
    println!(
        "restored {} ({} tables, {} entries, schema {}); the previous database is kept beside it; the search index is rebuilt on next start",
        r.path.display(),
        r.tables,
        r.entries,
        r.schema_version
    );
    Ok(0)
}

/// `bulwark search reindex`.
pub fn reindex(cli: &Cli) -> anyhow::Result<i32> {
    let cfg = config(cli)?;
    let store = crate::app::open_store(&cfg.data_dir)?;
    let search = crate::search::Search::open(
        &crate::search::Search::dir(&cfg.data_dir),
        store,
        crate::app::search_sources(),
    )?;
    let n = search.rebuild()?;
    search.close()?;
    println!("indexed {n} documents");
    Ok(0)
}

/// `bulwark config check [FILE]`: prints every problem, exit 1 if any.
pub fn config_check(cli: &Cli, file: Option<PathBuf>) -> i32 {
    let file = file.or_else(|| cli.config.clone());
    let overrides = crate::config::Overrides {
        data_dir: cli.data_dir.clone(),
        listen: None,
    };
    match Config::load(file.as_deref(), std::env::vars(), &overrides) {
        Ok(c) => {
            let what = file
                .map(|f| f.display().to_string())
                .unwrap_or_else(|| "defaults and environment".into());
            println!(
                "{what}: OK (data_dir {}, listen {})",
                c.data_dir.display(),
                c.listen
            );
            0
        }
        Err(e) => {
            for p in &e.problems {
                println!("error: {p}");
            }
            1
        }
    }
}

/// `bulwark config keys`.
pub fn config_keys() {
    let defaults = toml::Value::try_from(Config::default()).ok();
    for (key, env) in Config::keys() {
        let default = defaults
            .as_ref()
            .and_then(|d| key.split('.').try_fold(d, |v, k| v.get(k)))
            .map(|v| v.to_string())
            .unwrap_or_default();
        println!("{key:<32} {env:<40} {default}");
    }
}
