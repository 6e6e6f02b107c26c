//! `smsgate user`: the people who sign in to the web inbox, managed through
//! the running daemon's `/v1/users` (the store is the daemon's alone), with
//! an admin token, as `smsgate send` uses the API.
//!
//! A password is read from stdin: with `--password-stdin`, or when stdin is
//! not a terminal, one line; on a terminal it is asked for twice with echo
//! off (termios), so it never appears on the screen or in the shell history.

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

use clap::{Args, Subcommand};
use hyper::Method;
use serde_json::{json, Value};

use super::send::{refused, token, Api};
use super::UsageError;

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add a person: `user add NAME --role agent|admin [--team T]`.
    Add(AddArgs),
    /// List the people who sign in.
    List(ApiArgs),
    /// Set a person's password (their sessions end).
    Passwd(PasswdArgs),
    /// Remove a person (their sessions end).
    Remove(RemoveArgs),
}

/// Where the API is and the admin token.
#[derive(Debug, Args)]
pub struct ApiArgs {
    /// The API's address (host:port, or http://host:port).
    #[arg(long, default_value = "127.0.0.1:8080")]
    api: String,
    /// A token with the admin scope (default: $SMSGATE_API_TOKEN).
    #[arg(long)]
    token: Option<String>,
}

#[derive(Debug, Args)]
pub struct AddArgs {
    /// The sign-in name: letters, digits, '.', '_', '-'.
    name: String,
    /// agent (the inbox) or admin (also users and settings).
    #[arg(long)]
    role: String,
    /// Their team (a [[conversation.team]] id).
    #[arg(long)]
    team: Option<String>,
    /// Read the password as one line from stdin instead of asking.
    #[arg(long)]
    password_stdin: bool,
    #[command(flatten)]
    api: ApiArgs,
}

#[derive(Debug, Args)]
pub struct PasswdArgs {
    name: String,
    /// Read the password as one line from stdin instead of asking.
    #[arg(long)]
    password_stdin: bool,
    #[command(flatten)]
    api: ApiArgs,
}

#[derive(Debug, Args)]
pub struct RemoveArgs {
    name: String,
    #[command(flatten)]
    api: ApiArgs,
}

/// Turns terminal echo off until dropped.
struct NoEcho {
    saved: nix::sys::termios::Termios,
}

impl NoEcho {
    fn new() -> Result<NoEcho, UsageError> {
        use nix::sys::termios::{tcgetattr, tcsetattr, LocalFlags, SetArg};
        let stdin = std::io::stdin();
        let saved = tcgetattr(&stdin)
            .map_err(|e| UsageError(format!("cannot read the terminal's settings: {e}")))?;
        let mut quiet = saved.clone();
        quiet.local_flags.remove(LocalFlags::ECHO);
        // Keep the newline echoed so the next prompt starts on its own line.
        quiet.local_flags.insert(LocalFlags::ECHONL);
        tcsetattr(&stdin, SetArg::TCSANOW, &quiet)
            .map_err(|e| UsageError(format!("cannot turn the terminal's echo off: {e}")))?;
        Ok(NoEcho { saved })
    }
}

impl Drop for NoEcho {
    fn drop(&mut self) {
        let _ = nix::sys::termios::tcsetattr(
            std::io::stdin(),
            nix::sys::termios::SetArg::TCSANOW,
            &self.saved,
        );
    }
}

/// One line from `input`, without its line ending; an empty input is an error.
fn read_line(input: &mut dyn BufRead) -> Result<String, UsageError> {
    let mut line = String::new();
    input
        .read_line(&mut line)
        .map_err(|e| UsageError(format!("cannot read the password: {e}")))?;
    let password = line.strip_suffix('\n').unwrap_or(&line);
    let password = password.strip_suffix('\r').unwrap_or(password);
    if password.is_empty() {
        return Err(UsageError("no password given on stdin".into()));
    }
    Ok(password.to_string())
}

/// The password: from stdin as a line, or asked twice on the terminal.
fn password(name: &str, from_stdin: bool) -> Result<String, UsageError> {
    let stdin = std::io::stdin();
    if from_stdin || !stdin.is_terminal() {
        return read_line(&mut stdin.lock());
    }
    let ask = |prompt: &str| -> Result<String, UsageError> {
        eprint!("{prompt}");
        std::io::stderr().flush()?;
        let _quiet = NoEcho::new()?;
        read_line(&mut std::io::stdin().lock())
    };
    let first = ask(&format!("Password for {name} (at least 10 characters): "))?;
    let again = ask("Again: ")?;
    if first != again {
        return Err(UsageError(
            "the two passwords differ; nothing changed".into(),
        ));
    }
    Ok(first)
}

/// A user name as a path segment (the API refuses names that would need
/// escaping; this keeps a typo from reaching another route).
fn path_of(name: &str) -> Result<String, UsageError> {
    crate::store::users::check_name(name)
        .map(|n| format!("/v1/users/{n}"))
        .map_err(|e| UsageError(format!("{name:?}: {e}")))
}

/// One line for a user as the API answers it.
fn user_line(user: &Value) -> String {
    let field = |k: &str| {
        user.get(k)
            .and_then(Value::as_str)
            .unwrap_or("-")
            .to_string()
    };
    format!(
        "{:<24} {:<6} {}",
        field("name"),
        field("role"),
        field("team")
    )
}

async fn add(
    args: &AddArgs,
    password: String,
    api: &Api,
    out: &mut dyn Write,
) -> Result<(), UsageError> {
    let mut body = json!({"name": args.name, "password": password, "role": args.role});
    if let Some(team) = &args.team {
        body["team"] = json!(team);
    }
    let (status, answer) = api
        .call(Method::POST, "/v1/users", Some(body.to_string()))
        .await?;
    if status != 201 {
        return Err(refused("the API refused the user", status, &answer));
    }
    let user: Value = serde_json::from_str(&answer).unwrap_or(Value::Null);
    writeln!(out, "added {}", user_line(&user))?;
    Ok(())
}

async fn list(api: &Api, out: &mut dyn Write) -> Result<(), UsageError> {
    let (status, answer) = api.call(Method::GET, "/v1/users", None).await?;
    if status != 200 {
        return Err(refused("cannot list users", status, &answer));
    }
    let page: Value = serde_json::from_str(&answer)
        .map_err(|e| UsageError(format!("the API's answer is not a list of users: {e}")))?;
    writeln!(out, "{:<24} {:<6} TEAM", "NAME", "ROLE")?;
    for user in page["items"].as_array().into_iter().flatten() {
        writeln!(out, "{}", user_line(user))?;
    }
    Ok(())
}

fn runtime() -> Result<tokio::runtime::Runtime, UsageError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| UsageError(format!("cannot start the runtime: {e}")))
}

pub fn run(command: UserCommand) -> Result<ExitCode, UsageError> {
    let out = &mut std::io::stdout().lock();
    match command {
        UserCommand::Add(args) => {
            let token = token(args.api.token.as_deref())?;
            path_of(&args.name)?;
            let api = Api::new(&args.api.api, &token)?;
            let password = password(&args.name, args.password_stdin)?;
            runtime()?.block_on(add(&args, password, &api, out))?;
        }
        UserCommand::List(args) => {
            let api = Api::new(&args.api, &token(args.token.as_deref())?)?;
            runtime()?.block_on(list(&api, out))?;
        }
        UserCommand::Passwd(args) => {
            let api = Api::new(&args.api.api, &token(args.api.token.as_deref())?)?;
            let path = path_of(&args.name)?;
            let password = password(&args.name, args.password_stdin)?;
            let body = json!({ "password": password }).to_string();
            let (status, answer) = runtime()?.block_on(api.call(Method::PUT, &path, Some(body)))?;
            if status != 200 {
                return Err(refused("the API refused the password", status, &answer));
            }
            writeln!(
                out,
                "password of {} changed; their sessions ended",
                args.name.trim()
            )?;
        }
        UserCommand::Remove(args) => {
            let api = Api::new(&args.api.api, &token(args.api.token.as_deref())?)?;
            let path = path_of(&args.name)?;
            let (status, answer) = runtime()?.block_on(api.call(Method::DELETE, &path, None))?;
            if status != 204 {
                return Err(refused(
                    "the API refused to remove the user",
                    status,
                    &answer,
                ));
            }
            writeln!(out, "removed {}", args.name.trim())?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_line_loses_its_line_ending_only() {
        let line = |text: &str| read_line(&mut std::io::Cursor::new(text.as_bytes().to_vec()));
        assert_eq!(line("  spaced secret \n").unwrap(), "  spaced secret ");
        assert_eq!(line("crlf secret!\r\nnext").unwrap(), "crlf secret!");
        assert_eq!(line("no newline at all").unwrap(), "no newline at all");
        assert!(line("").is_err());
        assert!(line("\n").is_err());
    }

    #[test]
    fn names_become_paths_or_are_refused() {
        assert_eq!(path_of(" ana ").unwrap(), "/v1/users/ana");
        assert!(path_of("../metrics").is_err());
        assert!(path_of("ana ruiz").is_err());
    }
}
