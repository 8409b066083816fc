//! The command line: `check-config`, `--version`, `--help`, `routes`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;

use common::{scratch_dir, BIN};

fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN).args(args).output().expect("binary runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_config_names_the_file_the_key_and_the_reason() {
    let dir = scratch_dir("cli");
    let cases = [
        (
            "[upstream]\nurl = \"ftp://zone\"\n",
            "upstream.url",
            "must start with http:// or https://",
        ),
        (
            "[upstream]\nread_timeout = \"forever\"\n",
            "upstream.read_timeout",
            "is not a duration",
        ),
        (
            "[listen]\nmetric = \"127.0.0.1:1\"\n",
            "listen.metric",
            "unknown field `metric`",
        ),
        (
            "[server]\nthreads = \"two\"\n",
            "server.threads",
            "invalid type",
        ),
        ("[upstream\n", "(top level)", "invalid table header"),
        ("upstream = 3\n", "upstream", "expected a table"),
        (
            "[log]\nlevel = \"inof\"\n",
            "log.level",
            "\"inof\" is not a level",
        ),
        (
            &format!(
                "[upstream]\nca_file = \"{}\"\n",
                common::fixture("test-key.pem").display()
            ),
            "upstream.ca_file",
            "test-key.pem",
        ),
        (
            &format!(
                "[upstream]\nca_file = \"{}\"\n",
                common::fixture("README.md").display()
            ),
            "upstream.ca_file",
            "holds no PEM certificate",
        ),
        (
            &format!(
                "[[listen.tls]]\naddress = \"127.0.0.1:8443\"\ncert = \"{}\"\nkey = \"{}\"\n",
                common::fixture("test-cert.pem").display(),
                common::fixture("other-key.pem").display()
            ),
            "listen.tls[0].key",
            "is not the private key of the certificate",
        ),
        (
            &format!(
                "[[listen.tls]]\naddress = \"127.0.0.1:8443\"\ncert = \"{}\"\nkey = \"{}\"\n",
                common::fixture("README.md").display(),
                common::fixture("test-key.pem").display()
            ),
            "listen.tls[0].cert",
            "holds no PEM certificate",
        ),
        (
            &format!(
                "[[listen.tls]]\naddress = \"127.0.0.1:8443\"\ncert = \"{}\"\nkey = \"{}\"\n",
                common::fixture("").display(),
                common::fixture("test-key.pem").display()
            ),
            "listen.tls[0].cert",
            "is not a file",
        ),
    ];
    for (i, (text, key, reason)) in cases.iter().enumerate() {
        let path = dir.join(format!("bad{i}.toml"));
        std::fs::write(&path, text).unwrap();
        let (code, _, err) = run(&["check-config", path.to_str().unwrap()]);
        assert_eq!(code, 1, "{text}");
        assert!(
            err.contains(path.to_str().unwrap()),
            "names the file: {err}"
        );
        assert!(err.contains(key), "names the key {key}: {err}");
        assert!(err.contains(reason), "says why ({reason}): {err}");
    }
    let (code, _, err) = run(&["check-config", dir.join("missing.toml").to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(err.contains("cannot read"), "{err}");
}

#[test]
fn check_config_prints_the_effective_config() {
    let dir = scratch_dir("cli");
    let path = dir.join("ok.toml");
    std::fs::write(&path, "[upstream]\nurl = \"https://zone.example.org\"\n").unwrap();
    let (code, out, _) = run(&["check-config", path.to_str().unwrap()]);
    assert_eq!(code, 0);
    assert!(out.contains("url = \"https://zone.example.org\""), "{out}");
    // Defaults are filled in.
    assert!(out.contains("api_prefix = \"/api/v3/onezone\""), "{out}");
    // Flags override the file.
    let (code, out, _) = run(&[
        "--upstream",
        "http://10.0.0.1:81",
        "check-config",
        path.to_str().unwrap(),
    ]);
    assert_eq!(code, 0);
    assert!(out.contains("url = \"http://10.0.0.1:81\""), "{out}");
}

#[test]
fn every_shipped_config_is_valid() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let (code, _, err) = run(&["check-config", path.to_str().unwrap()]);
            assert_eq!(code, 0, "{}: {err}", path.display());
        }
    }
}

#[test]
fn version_help_and_routes() {
    let (code, out, _) = run(&["--version"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("onezone-migration-proxy "), "{out}");
    let (code, out, _) = run(&["--help"]);
    assert_eq!(code, 0);
    for word in [
        "check-config",
        "demo",
        "--config",
        "--listen",
        "--upstream",
        "--metrics-listen",
    ] {
        assert!(out.contains(word), "--help mentions {word}");
    }
    let (code, out, _) = run(&["routes"]);
    assert_eq!(code, 0);
    // A reader that goes away early (`routes | head -3`) ends the command quietly.
    let piped = Command::new("sh")
        .arg("-c")
        // The reader has exited before the command writes: every write meets a closed pipe.
        .arg(format!(
            "(sleep 0.3; {BIN} routes) | true; (sleep 0.3; {BIN} check-config \"$0\") | true"
        ))
        .arg(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("config/onezone-migration-proxy.toml"),
        )
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&piped.stderr);
    assert!(
        !err.contains("panicked") && !err.contains("Broken pipe"),
        "{err}"
    );
    assert!(
        out.contains("/groups/{id}/users/token") && out.contains("userJoinGroup"),
        "{out}"
    );
}
