//! Which URLs custos will talk to: https, or plain http on loopback only; never a base URL
//! that carries credentials, a query or a fragment.

use crate::error::{Error, Result};

/// Refuses an API or login base that carries a user name, password, query or fragment, plain
/// http except on loopback, and anything that is not http(s). Never repeats what it refuses.
pub fn check_base_url(what: &str, url: &str) -> Result<()> {
    let parsed =
        reqwest::Url::parse(url).map_err(|e| Error::Config(format!("{what} is not a URL: {e}")))?;
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(Error::Config(format!(
            "{what} must not carry a user name or password (it would be recorded in the package); give credentials through GENESYSCLOUD_OAUTHCLIENT_ID/SECRET or --credentials"
        )));
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(Error::Config(format!(
            "{what} must not carry a query string or fragment (it may hold a secret, and would be recorded in the package): give scheme, host, port and path only"
        )));
    }
    check_url_scheme(what, url, &parsed)
}

/// Refuses plain http except on loopback, and anything that is not http(s) (media URLs, which
/// carry their pre-signature in the query, are checked with this alone).
pub fn check_media_url(what: &str, url: &str) -> Result<()> {
    let parsed =
        reqwest::Url::parse(url).map_err(|e| Error::Config(format!("{what} is not a URL: {e}")))?;
    check_url_scheme(what, url, &parsed)
}

/// Whether the URL's host is a loopback address (127.0.0.0/8, ::1, localhost): the simulator,
/// a test server; never a real organization.
pub fn is_loopback(parsed: &reqwest::Url) -> bool {
    parsed.host().is_some_and(|h| host_is_loopback(&h))
}

/// Whether a host (a name, an IPv4 address, or an IPv6 one with or without brackets) is this
/// machine: `localhost` or a loopback address.
pub fn is_loopback_host(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    match bare.parse::<std::net::IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => url::Host::parse(host).is_ok_and(|h| host_is_loopback(&h)),
    }
}

fn host_is_loopback<S: AsRef<str>>(h: &url::Host<S>) -> bool {
    match h {
        url::Host::Ipv4(ip) => ip.is_loopback(),
        url::Host::Ipv6(ip) => ip.is_loopback(),
        url::Host::Domain(d) => d.as_ref() == "localhost",
    }
}

fn check_url_scheme(what: &str, url: &str, parsed: &reqwest::Url) -> Result<()> {
    let url = crate::custody::redact_url(url);
    match parsed.scheme() {
        "https" => Ok(()),
        "http" => {
            if is_loopback(parsed) {
                Ok(())
            } else {
                Err(Error::Config(format!(
                    "{what} '{url}' uses plain http; only https is allowed, except on loopback (127.0.0.1, ::1, localhost)"
                )))
            }
        }
        other => Err(Error::Config(format!(
            "{what} '{url}': scheme {other} is not supported; use https"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::is_loopback_host;

    #[test]
    fn a_bare_host_is_loopback_only_when_it_is_this_machine() {
        for h in ["127.0.0.1", "127.8.9.10", "::1", "[::1]", "localhost"] {
            assert!(is_loopback_host(h), "{h}");
        }
        for h in [
            "10.0.0.1",
            "192.0.2.10",
            "db.example",
            "localhost.example",
            "::2",
            "",
        ] {
            assert!(!is_loopback_host(h), "{h}");
        }
    }
}
