//! Retry or give up: [`Policy::decide`] for every attempt of every request, the failures
//! classified ([`Transport`], [`Attempt`]), `Retry-After` read in both its forms, and jitter.

use std::time::Duration;

use reqwest::header::{HeaderMap, RETRY_AFTER};

/// How a connection failed, as far as retrying is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// Refused or unreachable (nobody listening, no route).
    Connect,
    /// The name did not resolve.
    Dns,
    /// No answer in time.
    Timeout,
    /// Reset, aborted, closed mid-exchange.
    Reset,
    /// Fewer body bytes than Content-Length said (a cut transfer).
    Short,
    /// More body bytes than Content-Length or the API said: cut off and refused.
    Long,
    /// TLS failed: a bad certificate or protocol. Retrying would not help, and may hide an attack.
    Tls,
    /// Anything else the client reports (a bad redirect, an unbuildable request).
    Other,
}

impl Transport {
    /// Classifies an I/O error kind found in a failure's source chain.
    pub fn from_io(kind: std::io::ErrorKind) -> Transport {
        use std::io::ErrorKind as K;
        match kind {
            K::ConnectionRefused
            | K::AddrNotAvailable
            | K::NetworkUnreachable
            | K::HostUnreachable
            | K::NetworkDown => Transport::Connect,
            K::TimedOut | K::WouldBlock => Transport::Timeout,
            K::ConnectionReset
            | K::ConnectionAborted
            | K::BrokenPipe
            | K::NotConnected
            | K::Interrupted => Transport::Reset,
            K::UnexpectedEof => Transport::Short,
            // rustls reports certificate and protocol failures as InvalidData.
            K::InvalidData => Transport::Tls,
            _ => Transport::Other,
        }
    }

    /// Classifies a reqwest failure by walking its sources.
    pub fn of(e: &reqwest::Error) -> Transport {
        // Its sources only: reqwest's own message carries the URL, which says nothing here.
        let mut src = std::error::Error::source(e);
        while let Some(s) = src {
            let text = s.to_string().to_ascii_lowercase();
            if text.contains("certificate") || text.contains("tls") {
                return Transport::Tls;
            }
            if text.contains("dns error") || text.contains("failed to lookup") {
                return Transport::Dns;
            }
            // An io::Error may wrap another (rustls's InvalidData inside hyper's Other); its
            // `source()` skips the wrapped one, so unwrap by hand.
            let mut io = s.downcast_ref::<std::io::Error>();
            while let Some(e) = io {
                let t = Transport::from_io(e.kind());
                if t != Transport::Other {
                    return t;
                }
                io = e.get_ref().and_then(|i| i.downcast_ref::<std::io::Error>());
            }
            src = s.source();
        }
        if e.is_timeout() {
            Transport::Timeout
        } else if e.is_connect() {
            Transport::Connect
        } else if e.is_body() || e.is_request() {
            // hyper's "connection closed before message completed" and its kin.
            Transport::Reset
        } else {
            Transport::Other
        }
    }
}

/// What one attempt came to, as far as retrying is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attempt {
    /// An HTTP status, with the Retry-After it carried, if any.
    Status(u16, Option<Duration>),
    /// The connection failed or broke.
    Transport(Transport),
}

/// What to do after an attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Done: hand the result to the caller (success, or an error the caller must handle).
    Accept,
    /// Wait this long, then try again.
    Retry(Duration),
    /// Stop retrying: too many attempts.
    GiveUp,
}

/// How many attempts, and the backoff's floor and ceiling.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    /// Attempts before giving up on retryable failures.
    pub max_attempts: u32,
    /// The first backoff, and the least any backoff is.
    pub base: Duration,
    /// The most any backoff is (a Retry-After is honoured whatever its length).
    pub cap: Duration,
}

/// API requests: 8 attempts, backoff from 0.5 s up to 30 s.
pub const API: Policy = Policy {
    max_attempts: 8,
    base: Duration::from_millis(500),
    cap: Duration::from_secs(30),
};

/// Media downloads: 3 attempts, backoff from 0.2 s up to 5 s (a failed download costs a whole
/// transfer; a recording that fails 3 times is `Failed`, never `Exported`).
pub const MEDIA: Policy = Policy {
    max_attempts: 3,
    base: Duration::from_millis(200),
    cap: Duration::from_secs(5),
};

impl Policy {
    /// The one place that decides retry-or-give-up, for API calls and media downloads alike.
    /// `attempt` counts from 1; `prev` is the last backoff (zero before the first); `jitter` is
    /// uniform in [0, 1].
    ///
    /// Retried: 429 (after Retry-After, else backoff), 408, 5xx except 501 and 505, and
    /// transport failures except TLS and client-side errors. Backoff is exponential with
    /// decorrelated jitter (AWS Architecture Blog, "Exponential Backoff and Jitter"): a uniform
    /// draw in [base, 3 × previous], capped. Everything else — success, 3xx, the other 4xx — is
    /// accepted for the caller to handle (401 is handled by re-authenticating, 404 becomes
    /// `Purged`, and so on).
    pub fn decide(&self, what: Attempt, attempt: u32, prev: Duration, jitter: f64) -> Decision {
        let retryable = match what {
            Attempt::Transport(t) => !matches!(t, Transport::Tls | Transport::Other),
            Attempt::Status(s, _) => {
                s == 429 || s == 408 || (500..600).contains(&s) && s != 501 && s != 505
            }
        };
        if !retryable {
            return Decision::Accept;
        }
        if attempt >= self.max_attempts {
            return Decision::GiveUp;
        }
        if let Attempt::Status(_, Some(after)) = what {
            return Decision::Retry(after);
        }
        let base = self.base.as_secs_f64();
        let hi = (prev.as_secs_f64() * 3.0).max(base);
        let d = base + (hi - base) * jitter.clamp(0.0, 1.0);
        Decision::Retry(Duration::from_secs_f64(d.min(self.cap.as_secs_f64())))
    }
}

/// `Retry-After` as seconds or an HTTP date (RFC 9110 §10.2.3); a date in the past is 0 s.
pub(crate) fn retry_after(h: &HeaderMap) -> Option<Duration> {
    let v = h.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when =
        time::OffsetDateTime::parse(v, &time::format_description::well_known::Rfc2822).ok()?;
    let secs = (when - time::OffsetDateTime::now_utc())
        .whole_seconds()
        .max(0) as u64;
    Some(Duration::from_secs(secs))
}

/// A cheap jitter source (not for cryptography).
pub(crate) fn jitter() -> f64 {
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    f64::from(n % 1000) / 1000.0
}
