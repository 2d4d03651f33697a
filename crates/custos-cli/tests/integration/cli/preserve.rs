//! `custos export --protect` / `custos release --protect` and `--restore-archived --no-wait`
//! through the binary: exit codes, what is printed, and the receipt verify accepts.

use super::*;

#[tokio::test]
async fn protect_then_release_through_the_binary() {
    let env = start(scenario()).await;
    let out = tmp("cli-protect");
    let o = run(export_cmd(&env, &out, &["--protect"])).await;
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let n = env
        .sim
        .truth()
        .recordings
        .iter()
        .map(|t| t.conversation_id.clone())
        .collect::<BTreeSet<_>>()
        .len();
    assert!(env.sim.truth().recordings.iter().all(|t| t.protected));
    // `--protect` is the one thing `release` releases: it must be said.
    let o = run({
        let mut c = Command::new(BIN);
        c.args(["release", out.to_str().unwrap()]);
        c
    })
    .await;
    assert_eq!(o.status.code(), Some(2));
    let o = run({
        let mut c = Command::new(BIN);
        c.args([
            "release",
            "--protect",
            out.to_str().unwrap(),
            "--operator",
            "Jane Doe",
        ])
        .env("GENESYSCLOUD_OAUTHCLIENT_ID", "custos-sim-client")
        .env("GENESYSCLOUD_OAUTHCLIENT_SECRET", "custos-sim-secret");
        c
    })
    .await;
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        stdout.contains(&format!(
            "Released deletion protection on {n} of {n} conversations"
        )),
        "{stdout}"
    );
    assert!(env.sim.truth().recordings.iter().all(|t| !t.protected));
    let v = run({
        let mut c = Command::new(BIN);
        c.args(["verify", out.to_str().unwrap()]);
        c
    })
    .await;
    assert_eq!(
        v.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&v.stdout)
    );
    std::fs::remove_dir_all(&out).unwrap();
}

#[tokio::test]
async fn no_wait_exits_3_while_restores_are_under_way() {
    let env = start(Scenario {
        archived_fraction: 0.2,
        restore_ms: 3_600_000,
        ..scenario()
    })
    .await;
    let out = tmp("cli-nowait");
    let o = run(export_cmd(&env, &out, &["--restore-days", "3"])).await;
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("go with --restore-archived"));
    assert!(!out.exists(), "a refused run wrote {}", out.display());
    let o = run(export_cmd(&env, &out, &["--restore-archived", "--no-wait"])).await;
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert!(err.contains("still being restored"), "{err}");
    env.sim.advance_clock(3_600_000);
    let o = run(export_cmd(&env, &out, &["--restore-archived", "--no-wait"])).await;
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let outcomes = custos::package::outcomes(&out).unwrap();
    assert!(outcomes.values().all(|o| o != "Archived"), "{outcomes:?}");
    std::fs::remove_dir_all(&out).unwrap();
}
