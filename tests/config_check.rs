//! `smsgate check-config` as an operator runs it: every problem at once, the
//! file named in a syntax error, refusals and warnings.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Command;

const TOKEN: &str = "[[api.tokens]]\nname = \"crm\"\nsha256 = \"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\"\nscopes = [\"send\"]\n";

/// Write `text` to a config file, mode 0600 unless `mode` says otherwise.
fn file(name: &str, text: &str, mode: u32) -> PathBuf {
    let path =
        std::env::temp_dir().join(format!("smsgate-check-{}-{name}.toml", std::process::id()));
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    path
}

/// (exit code, stdout, stderr) of `smsgate check-config --config path`.
fn check(path: &PathBuf) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_smsgate"))
        .args(["check-config", "--config"])
        .arg(path)
        .env_remove("SMSGATE_API_TOKEN")
        .output()
        .unwrap();
    let _ = std::fs::remove_file(path);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn three_problems_are_reported_at_once() {
    let path = file(
        "three",
        &format!("{TOKEN}[api]\nbind = \"nowhere\"\n[store]\ncache_mb = \"lots\"\n[sms]\nvalidity = \"1m\"\n"),
        0o600,
    );
    let (code, out, err) = check(&path);
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.contains(&path.display().to_string()), "{err}");
    assert!(err.contains("3 problems"), "{err}");
    for key in ["api.bind:", "store.cache_mb:", "sms.validity:"] {
        assert!(err.contains(key), "{key} missing from: {err}");
    }
}

#[test]
fn a_syntax_error_names_the_file_line_and_column() {
    let path = file(
        "syntax",
        &format!("{TOKEN}[sms\ndefault_country = \"US\"\n"),
        0o600,
    );
    let (code, _, err) = check(&path);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains(&path.display().to_string()), "{err}");
    assert!(err.contains("line 5") && err.contains("column"), "{err}");
}

#[test]
fn two_modems_on_one_port_are_refused() {
    let path = file(
        "ports",
        &format!("{TOKEN}[[modem]]\nid = \"a\"\nport = \"/dev/ttyUSB7\"\n[[modem]]\nid = \"b\"\nport = \"/dev/ttyUSB7\"\n"),
        0o600,
    );
    let (code, _, err) = check(&path);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("modem[1].port") && err.contains("modem[0]'s port"),
        "{err}"
    );
}

#[test]
fn a_good_file_passes_with_its_warnings() {
    // A token, loopback, private: OK and nothing to say.
    let path = file("good", TOKEN, 0o600);
    let (code, out, err) = check(&path);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(": OK ("), "{out}");
    assert_eq!(err, "");

    // No token, a LAN address, readable by everyone: still valid, three warnings.
    let path = file("open", "[api]\nbind = \"0.0.0.0:8080\"\n", 0o644);
    let (code, out, err) = check(&path);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(": OK ("), "{out}");
    let warnings: Vec<&str> = err.lines().filter(|l| l.contains("warning:")).collect();
    assert_eq!(warnings.len(), 3, "{err}");
    assert!(err.contains("no API token"), "{err}");
    assert!(err.contains("beyond loopback"), "{err}");
    assert!(err.contains("readable by every user (mode 644)"), "{err}");
}
