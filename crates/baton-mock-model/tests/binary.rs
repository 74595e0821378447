//! The demo binary: bad arguments get a clear line and exit code 2, not a panic.
use std::process::Command;

fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_baton-mock-model"))
        .args(args)
        .output()
        .expect("run baton-mock-model");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn help_and_bad_arguments_are_answered_plainly() {
    let (code, out, _) = run(&["--help"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("usage: baton-mock-model"), "{out}");

    let (code, _, err) = run(&["nonsense"]);
    assert_eq!(code, 2);
    assert!(err.contains("'nonsense' is not an address"), "{err}");
    assert!(!err.contains("panicked"), "{err}");

    let (code, _, err) = run(&["127.0.0.1:0", "extra"]);
    assert_eq!(code, 2);
    assert!(err.contains("unexpected argument 'extra'"), "{err}");
}

#[test]
fn an_address_in_use_is_reported() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let (code, _, err) = run(&[&addr]);
    assert_eq!(code, 2);
    assert!(err.contains(&format!("cannot listen on {addr}")), "{err}");
}
