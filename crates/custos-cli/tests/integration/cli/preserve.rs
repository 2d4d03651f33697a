//! `custos export --protect` / `custos release --protect` and `--restore-archived --no-wait`
//! through the binary: exit codes, what is printed, and the receipt verify accepts.

use super::*;

#[tokio::test]
async fn protect_then_release_through_the_binary() {
    let env = start(scenario()).await;
    let out = tmp("cli-protect");
    let key = tmp("cli-protect-key");
    keygen(&key);
    let public = format!("{}.pub", key.display());
    let o = run(export_cmd(
        &env,
        &out,
        &["--protect", "--sign-key", key.to_str().unwrap()],
    ))
    .await;
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // Every conversation the query matched is held, those without a recording too.
    let truth = env.sim.truth();
    let n = truth
        .recordings
        .iter()
        .map(|t| t.conversation_id.clone())
        .chain(truth.conversations_without_recordings.iter().cloned())
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
            "--pubkey",
            &public,
            "--api-base",
            &env.base_url,
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
    assert!(stdout.contains("export    signed by key"), "{stdout}");
    assert_eq!(verify_code(&out), 0, "the receipt beside the bag verifies");
    std::fs::remove_dir_all(&out).unwrap();
    std::fs::remove_file(&key).unwrap();
    std::fs::remove_file(&public).unwrap();
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

#[tokio::test]
async fn an_empty_increment_and_verify_previous_through_the_binary() {
    let env = start(scenario()).await;
    let first = tmp("cli-chain-1");
    let second = tmp("cli-chain-2");
    let key = tmp("cli-chain-key");
    keygen(&key);
    let public = format!("{}.pub", key.display());
    let signed = ["--sign-key", key.to_str().unwrap(), "--pubkey", &public];
    let o = run(export_cmd(
        &env,
        &first,
        &[&["--orphans"][..], &signed].concat(),
    ))
    .await;
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains("completeness: 40 conversations matched"),
        "{stdout}"
    );
    assert!(
        stdout.contains("orphan recordings made in the query's interval"),
        "{stdout}"
    );
    // Nothing new since: an empty increment, sealed, that names the first bag.
    let o = run(export_cmd(
        &env,
        &second,
        &[
            &["--orphans", "--increment-of", first.to_str().unwrap()][..],
            &signed,
        ]
        .concat(),
    ))
    .await;
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let verify = |args: &[&str]| {
        let mut c = Command::new(BIN);
        c.arg("verify").args(args);
        c
    };
    let (s1, s2) = (first.to_str().unwrap(), second.to_str().unwrap());
    let v = run(verify(&[s2, "--previous", s1])).await;
    assert_eq!(
        v.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&v.stdout)
    );
    // The first bag given as its own predecessor: the link is broken.
    let v = run(verify(&[s1, "--previous", s2])).await;
    assert_eq!(v.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&v.stdout).contains("chain-broken"),
        "{}",
        String::from_utf8_lossy(&v.stdout)
    );
    // Another setting than the chain's is refused before anything is written.
    let third = tmp("cli-chain-3");
    let o = run(export_cmd(
        &env,
        &third,
        &[&["--increment-of", s2][..], &signed].concat(),
    ))
    .await;
    assert_eq!(o.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("--orphans"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        !third.exists(),
        "a refused increment wrote {}",
        third.display()
    );
    // A hostile later bag: its list of earlier exports swapped for a FIFO. Verify reports it
    // and never blocks on it.
    let prior = second.join("data/chain_prior_exported.txt");
    std::fs::remove_file(&prior).unwrap();
    mkfifo(&prior);
    let v = tokio::time::timeout(
        Duration::from_secs(60),
        run(verify(&[s2, "--previous", s1])),
    )
    .await
    .expect("custos verify blocked on a FIFO");
    assert_eq!(v.status.code(), Some(1));
    let inside = first.join("increment");
    let o = run(export_cmd(
        &env,
        &inside,
        &[&["--orphans", "--increment-of", s1][..], &signed].concat(),
    ))
    .await;
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("inside the previous bag"));
    assert!(!inside.exists());
    for d in [first, second, third] {
        let _ = std::fs::remove_dir_all(d);
    }
    let _ = std::fs::remove_file(&key);
    let _ = std::fs::remove_file(&public);
}
