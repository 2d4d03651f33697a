//! The only code that sends requests: one HTTP client, one shared rate budget (`limit`), one
//! function that decides retry-or-give-up (`retry`), bounded reads of every answer
//! (`response`), the OAuth token (`token`), and the media downloads ([`media`]).
//!
//! Every API call, from any task, passes [`Limiter::acquire`], so parallel work never exceeds the
//! configured rate; a 429 pauses the *whole client* for its Retry-After, not just the task that
//! got it. Pre-signed media URLs are not API calls: they bypass the limiter and never carry the
//! token; API-hosted media (the search API's `/media`) counts against the budget.

mod client;
mod limit;
pub mod media;
pub(crate) mod response;
mod retry;
mod token;

mod url;

pub use client::Api;
pub use limit::{Limiter, RateWindow, SAFETY};
pub(crate) use response::read_limited;
pub use response::{ApiResponse, MAX_JSON_BYTES};
pub(crate) use retry::jitter;
pub use retry::{API, Attempt, Decision, MEDIA, Policy, Transport};
pub use token::Credentials;
pub use url::{check_base_url, check_media_url, is_loopback, is_loopback_host};

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderMap;
    use std::time::Duration;
    use tokio::time::Instant;

    fn retryable_status(s: u16) -> bool {
        s == 429 || s == 408 || (500..600).contains(&s) && s != 501 && s != 505
    }

    #[test]
    fn decide_pins_every_status() {
        for p in [API, MEDIA] {
            for s in 100..600u16 {
                let d = p.decide(Attempt::Status(s, None), 1, Duration::ZERO, 0.5);
                let retry = retryable_status(s);
                assert_eq!(matches!(d, Decision::Retry(_)), retry, "status {s}");
                assert_eq!(d == Decision::Accept, !retry, "status {s}");
                assert_eq!(
                    p.decide(
                        Attempt::Status(s, None),
                        p.max_attempts,
                        Duration::ZERO,
                        0.5
                    ) == Decision::GiveUp,
                    retry,
                    "status {s} at the last attempt"
                );
            }
        }
        // Retry-After wins, however long: it is honoured, not turned into a failure.
        assert_eq!(
            API.decide(
                Attempt::Status(429, Some(Duration::from_secs(3600))),
                2,
                Duration::ZERO,
                0.0
            ),
            Decision::Retry(Duration::from_secs(3600))
        );
    }

    #[test]
    fn decide_pins_every_transport_failure() {
        use Transport::*;
        for (t, retry) in [
            (Connect, true),
            (Dns, true),
            (Timeout, true),
            (Reset, true),
            (Short, true),
            (Long, true),
            (Tls, false),
            (Other, false),
        ] {
            for p in [API, MEDIA] {
                let d = p.decide(Attempt::Transport(t), 1, Duration::ZERO, 0.5);
                assert_eq!(matches!(d, Decision::Retry(_)), retry, "{t:?}");
                assert_eq!(d == Decision::Accept, !retry, "{t:?}");
                let last = p.decide(Attempt::Transport(t), p.max_attempts, Duration::ZERO, 0.5);
                assert_eq!(last == Decision::GiveUp, retry, "{t:?} at the last attempt");
            }
        }
    }

    #[test]
    fn io_error_kinds_map_to_transport_classes() {
        use std::io::ErrorKind as K;
        for (k, t) in [
            (K::ConnectionRefused, Transport::Connect),
            (K::HostUnreachable, Transport::Connect),
            (K::NetworkUnreachable, Transport::Connect),
            (K::AddrNotAvailable, Transport::Connect),
            (K::TimedOut, Transport::Timeout),
            (K::ConnectionReset, Transport::Reset),
            (K::ConnectionAborted, Transport::Reset),
            (K::BrokenPipe, Transport::Reset),
            (K::NotConnected, Transport::Reset),
            (K::UnexpectedEof, Transport::Short),
            (K::InvalidData, Transport::Tls),
            (K::PermissionDenied, Transport::Other),
            (K::InvalidInput, Transport::Other),
        ] {
            assert_eq!(Transport::from_io(k), t, "{k:?}");
        }
    }

    #[tokio::test]
    async fn real_failures_are_classified() {
        let http = reqwest::Client::new();
        // Nobody listening: refused.
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        drop(l);
        let e = http
            .get(format!("http://127.0.0.1:{port}/"))
            .send()
            .await
            .unwrap_err();
        assert_eq!(Transport::of(&e), Transport::Connect, "{e:?}");
        // TLS spoken to a plain-TCP peer that answers with garbage: TLS, not retried.
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                use tokio::io::AsyncWriteExt;
                let _ = s
                    .write_all(b"HTTP/1.1 400 Bad Request\r\n\r\nnot tls")
                    .await;
            }
        });
        let tls = reqwest::Client::builder().use_rustls_tls().build().unwrap();
        let e = tls
            .get(format!("https://{addr}/"))
            .send()
            .await
            .unwrap_err();
        assert_eq!(Transport::of(&e), Transport::Tls, "{e:?}");
        // A peer that accepts and hangs up at once: reset mid-exchange.
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((s, _)) = l.accept().await {
                drop(s);
            }
        });
        let e = http
            .get(format!("http://{addr}/"))
            .send()
            .await
            .unwrap_err();
        assert_eq!(Transport::of(&e), Transport::Reset, "{e:?}");
    }

    #[test]
    fn backoff_is_decorrelated_jitter_within_base_and_cap() {
        for p in [API, MEDIA] {
            let mut prev = Duration::ZERO;
            for attempt in 1..p.max_attempts {
                for j in [0.0, 0.3, 1.0] {
                    let Decision::Retry(d) =
                        p.decide(Attempt::Transport(Transport::Reset), attempt, prev, j)
                    else {
                        panic!()
                    };
                    assert!(d >= p.base && d <= p.cap, "{d:?}");
                    assert!(d <= (prev * 3).max(p.base), "{d:?} after {prev:?}");
                }
                // The largest draw grows threefold each time, until the cap.
                let Decision::Retry(d) =
                    p.decide(Attempt::Transport(Transport::Reset), attempt, prev, 1.0)
                else {
                    panic!()
                };
                assert_eq!(d, (prev * 3).max(p.base).min(p.cap));
                prev = d;
            }
        }
    }

    #[test]
    fn requests_in_flight_follow_the_budget_and_the_observed_latency() {
        let creds = || Credentials {
            client_id: "c".into(),
            client_secret: "s".into(),
        };
        let api = |per_min| {
            Api::new("http://127.0.0.1:1", "http://127.0.0.1:1", creds(), per_min).unwrap()
        };
        let fast = api(6000);
        // Nothing observed yet: 0.5 s assumed, 99 req/s × 0.5 s × 2.
        assert!((99..=100).contains(&fast.requests_in_flight()));
        fast.observe_latency(Duration::from_millis(100));
        assert_eq!(fast.latency(), Some(Duration::from_millis(100)));
        assert_eq!(fast.requests_in_flight(), 20);
        for _ in 0..40 {
            fast.observe_latency(Duration::from_millis(300));
        }
        assert_eq!(fast.requests_in_flight(), 60);
        // A slow budget needs few; never fewer than 4, never more than 256.
        let slow = api(300);
        slow.observe_latency(Duration::from_millis(100));
        assert_eq!(slow.requests_in_flight(), 4);
        let huge = api(1_000_000);
        huge.observe_latency(Duration::from_secs(2));
        assert_eq!(huge.requests_in_flight(), 256);
    }

    #[test]
    fn plain_http_only_on_loopback() {
        assert!(check_base_url("x", "https://api.mypurecloud.com").is_ok());
        assert!(check_base_url("x", "http://127.0.0.1:8080").is_ok());
        assert!(check_base_url("x", "http://[::1]:8080").is_ok());
        assert!(check_base_url("x", "http://localhost:1").is_ok());
        assert!(
            check_base_url("x", "http://api.mypurecloud.com")
                .unwrap_err()
                .to_string()
                .contains("plain http")
        );
        assert!(check_base_url("x", "http://10.0.0.1").is_err());
        assert!(check_base_url("x", "ftp://127.0.0.1").is_err());
        assert!(check_base_url("x", "not a url").is_err());
        for bad in [
            "https://user:pw@api.example.com",
            "https://user@api.example.com",
            "https://api.example.com/?token=s3cret",
            "https://api.example.com/#s3cret",
        ] {
            let e = check_base_url("API base", bad).unwrap_err().to_string();
            assert!(!e.contains("s3cret") && !e.contains("pw"), "{e}");
        }
        assert!(check_media_url("m", "https://s3.example.com/x?X-Amz-Signature=1").is_ok());
    }

    #[test]
    fn secrets_are_redacted() {
        let c = Credentials {
            client_id: "id".into(),
            client_secret: "hunter2".into(),
        };
        assert!(!format!("{c:?}").contains("hunter2"));
    }

    fn headers(allowed: &str, count: &str, reset: &str) -> HeaderMap {
        let mut m = HeaderMap::new();
        m.insert("inin-ratelimit-allowed", allowed.parse().unwrap());
        m.insert("inin-ratelimit-count", count.parse().unwrap());
        m.insert("inin-ratelimit-reset", reset.parse().unwrap());
        m
    }

    #[test]
    fn rate_windows_are_read_from_the_headers() {
        let t = Instant::now();
        let w = RateWindow::from_headers(&headers("300", "299", "12"), t, 1).unwrap();
        assert_eq!(
            (w.allowed, w.count, w.reset),
            (300, 299, Duration::from_secs(12))
        );
        assert!(!w.exhausted());
        assert!(
            RateWindow::from_headers(&headers("300", "300", "12"), t, 1)
                .unwrap()
                .exhausted()
        );
        let w = RateWindow::from_headers(&headers("300", "301", "0"), t, 1).unwrap();
        assert!(w.exhausted() && w.reset == Duration::from_secs(1));
        assert_eq!(
            RateWindow::from_headers(&headers("x", "300", "12"), t, 1),
            None
        );
        assert_eq!(RateWindow::from_headers(&HeaderMap::new(), t, 1), None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_window_is_spent_down_and_waited_out_to_its_observed_end() {
        let l = Limiter::new(60_000);
        let t0 = Instant::now();
        let w = |ticket, count, reset, sent| {
            Some(RateWindow {
                allowed: 5,
                count,
                reset: Duration::from_secs(reset),
                sent,
                ticket,
            })
        };
        // The first request goes alone; its answer opens the window (count 1 of 5, 1 s).
        let first = l.acquire().await;
        l.observe(w(first, 1, 1, t0));
        // Four more fit, answered or not: no waiting beyond the 1 ms spacing.
        for _ in 0..4 {
            l.acquire().await;
        }
        assert!(Instant::now() - t0 < Duration::from_millis(10));
        // The sixth would be one too many: it waits for the window's end + 1 % (10 ms).
        let sixth = l.acquire().await;
        assert_eq!(Instant::now() - t0, Duration::from_millis(1010));
        assert_eq!(sixth, 6);
        // A late answer from the old window does not stop the new one.
        l.observe(w(5, 5, 1, t0));
        let t1 = Instant::now();
        l.acquire().await;
        assert!(Instant::now() - t1 < Duration::from_millis(5));
        let waited = l.waited();
        assert!(waited > Duration::from_millis(1000) && waited <= Duration::from_millis(1010));

        // A window we did not see open: its reset is waited out in full.
        let l = Limiter::new(60_000);
        let t = l.acquire().await;
        let t2 = Instant::now();
        l.observe(w(t, 5, 7, t2));
        l.acquire().await;
        assert!(Instant::now() - t2 >= Duration::from_secs(7));
    }

    #[tokio::test(start_paused = true)]
    async fn a_window_allowing_nothing_is_ignored() {
        let l = Limiter::new(60_000);
        let t0 = Instant::now();
        for _ in 0..5 {
            let t = l.acquire().await;
            l.observe(Some(RateWindow {
                allowed: 0,
                count: 0,
                reset: Duration::from_secs(60),
                sent: Instant::now(),
                ticket: t,
            }));
        }
        assert!(Instant::now() - t0 < Duration::from_millis(10));
    }

    #[tokio::test(start_paused = true)]
    async fn until_the_first_answer_one_request_at_a_time() {
        let l = std::sync::Arc::new(Limiter::new(60_000));
        let first = l.acquire().await;
        let l2 = l.clone();
        let second = tokio::spawn(async move { l2.acquire().await });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!second.is_finished(), "a second request before any answer");
        l.observe(None); // an answer without rate headers still lets the rest go
        assert_eq!(second.await.unwrap(), first + 1);
    }

    #[tokio::test(start_paused = true)]
    async fn limiter_spaces_requests_and_pauses_everyone() {
        let l = Limiter::new(600); // 99 % of it: one per 101.01 ms
        let t0 = Instant::now();
        for _ in 0..5 {
            l.acquire().await;
            l.observe(None);
        }
        let spent = Instant::now() - t0;
        assert!(
            spent >= Duration::from_millis(404) && spent <= Duration::from_millis(408),
            "{spent:?}"
        );
        l.pause(Duration::from_secs(5)).await;
        l.pause(Duration::from_secs(3)).await; // within the first: adds nothing
        assert_eq!(l.waited(), Duration::from_secs(5));
        l.acquire().await;
        assert!(Instant::now() - t0 >= Duration::from_millis(5400));
    }
}
