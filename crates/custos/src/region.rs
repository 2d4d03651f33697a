//! Genesys Cloud regions: the API host is `api.<domain>` and the token host `login.<domain>`;
//! there is no per-org host (the org is implied by the token). The table is the SDK's
//! `PureCloudRegionHosts` (SDK 257.1.0; see shared reference §5.2).

use thiserror::Error;

/// A region, by its domain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Region {
    /// The SDK's name, e.g. `eu_west_1`.
    pub name: &'static str,
    /// The domain, e.g. `mypurecloud.ie`.
    pub domain: &'static str,
}

/// Every region Genesys Cloud runs in, as (SDK name, domain).
pub const REGIONS: &[Region] = &[
    Region {
        name: "us_east_1",
        domain: "mypurecloud.com",
    },
    Region {
        name: "eu_west_1",
        domain: "mypurecloud.ie",
    },
    Region {
        name: "ap_southeast_2",
        domain: "mypurecloud.com.au",
    },
    Region {
        name: "ap_northeast_1",
        domain: "mypurecloud.jp",
    },
    Region {
        name: "eu_central_1",
        domain: "mypurecloud.de",
    },
    Region {
        name: "us_west_2",
        domain: "usw2.pure.cloud",
    },
    Region {
        name: "ca_central_1",
        domain: "cac1.pure.cloud",
    },
    Region {
        name: "ap_northeast_2",
        domain: "apne2.pure.cloud",
    },
    Region {
        name: "eu_west_2",
        domain: "euw2.pure.cloud",
    },
    Region {
        name: "ap_south_1",
        domain: "aps1.pure.cloud",
    },
    Region {
        name: "us_east_2",
        domain: "use2.us-gov-pure.cloud",
    },
    Region {
        name: "sa_east_1",
        domain: "sae1.pure.cloud",
    },
    Region {
        name: "me_central_1",
        domain: "mec1.pure.cloud",
    },
    Region {
        name: "ap_northeast_3",
        domain: "apne3.pure.cloud",
    },
    Region {
        name: "eu_central_2",
        domain: "euc2.pure.cloud",
    },
    Region {
        name: "mx_central_1",
        domain: "mxc1.pure.cloud",
    },
    Region {
        name: "ap_southeast_1",
        domain: "apse1.pure.cloud",
    },
];

/// A region name that is not a Genesys Cloud region.
#[derive(Debug, Error, PartialEq, Eq)]
#[error(
    "unknown Genesys Cloud region '{given}'; use a domain such as mypurecloud.com or usw2.pure.cloud, or an SDK name such as us_west_2 (known: {known})"
)]
pub struct UnknownRegion {
    /// What was given.
    pub given: String,
    /// The known domains, comma-separated.
    pub known: String,
}

impl Region {
    /// Parses a domain (`mypurecloud.ie`), an SDK name (`eu_west_1`), or an API/login host or
    /// URL of either (`api.mypurecloud.ie`, `https://login.mypurecloud.ie`).
    pub fn parse(s: &str) -> Result<Region, UnknownRegion> {
        let t = s.trim().to_ascii_lowercase();
        let t = t.strip_prefix("https://").unwrap_or(&t);
        let t = t.trim_end_matches('/');
        let t = t
            .strip_prefix("api.")
            .or_else(|| t.strip_prefix("login."))
            .unwrap_or(t);
        REGIONS
            .iter()
            .find(|r| r.domain == t || r.name == t.replace('-', "_"))
            .copied()
            .ok_or_else(|| UnknownRegion {
                given: s.to_owned(),
                known: REGIONS
                    .iter()
                    .map(|r| r.domain)
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }

    /// `https://api.<domain>`.
    pub fn api_base(&self) -> String {
        format!("https://api.{}", self.domain)
    }

    /// `https://login.<domain>` (the token URL is this plus `/oauth/token`).
    pub fn login_base(&self) -> String {
        format!("https://login.{}", self.domain)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_region_round_trips_by_domain_name_and_host() {
        assert_eq!(REGIONS.len(), 17);
        for r in REGIONS {
            assert_eq!(Region::parse(r.domain).unwrap(), *r);
            assert_eq!(Region::parse(r.name).unwrap(), *r);
            assert_eq!(Region::parse(&r.api_base()).unwrap(), *r);
            assert_eq!(Region::parse(&format!("{}/", r.login_base())).unwrap(), *r);
        }
        assert_eq!(
            Region::parse("US-WEST-2").unwrap().domain,
            "usw2.pure.cloud"
        );
    }

    #[test]
    fn unknown_regions_are_refused_with_the_list() {
        let e = Region::parse("mypurecloud.moon").unwrap_err();
        assert!(
            e.to_string()
                .contains("unknown Genesys Cloud region 'mypurecloud.moon'")
        );
        assert!(e.to_string().contains("usw2.pure.cloud"));
        assert!(Region::parse("evil.example.com").is_err());
    }
}
