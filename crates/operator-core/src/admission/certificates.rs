//! The webhook's certificates when the operator issues them itself: a CA and a serving
//! certificate it signed, as the four keys of one Secret. Pure: what is due at a given time
//! and issuing it; [`super::self_managed`] reads and writes the Secret.
//!
//! Each certificate is renewed once two thirds of its life have passed: a serving
//! certificate (one year) four months before it expires, the CA (ten years) three years
//! before. A renewed CA is trusted beside the old one (`ca.crt` holds both) for as long as
//! the old one is valid, so a replica still serving a certificate the old CA signed is
//! trusted while it catches up.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use k8s_openapi::ByteString;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PublicKeyData,
};
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;
use x509_parser::pem::Pem;

/// How long the CA the operator creates is valid.
pub const AUTHORITY_LIFETIME: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
/// How long each serving certificate is valid.
pub const SERVING_LIFETIME: Duration = Duration::from_secs(365 * 24 * 3600);
/// Certificates start this long before they are issued, for clocks a little behind ours.
const BACKDATE: Duration = Duration::from_secs(3600);

/// The Secret's keys: the CA bundle the API server trusts, the CA's key, and what the
/// webhook server presents.
pub const CA_BUNDLE_KEY: &str = "ca.crt";
pub const CA_KEY_KEY: &str = "ca.key";
pub const CERT_KEY: &str = "tls.crt";
pub const KEY_KEY: &str = "tls.key";

#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    #[error("cannot issue the webhook's certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("the webhook's CA in its Secret cannot sign: {0}")]
    UnusableAuthority(String),
}

/// A CA and the serving certificate it signed, as PEM.
#[derive(Clone, PartialEq, Eq)]
pub struct CertificateSet {
    /// The current CA first, then the one it replaced while that is still valid.
    pub ca_bundle: String,
    pub ca_key: String,
    pub cert: String,
    pub key: String,
}

// Keys are never printed.
impl std::fmt::Debug for CertificateSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificateSet")
            .field("ca_bundle", &self.ca_bundle)
            .field("cert", &self.cert)
            .finish_non_exhaustive()
    }
}

impl CertificateSet {
    /// The set a Secret's data holds, if it holds all four keys as text.
    pub fn from_data(data: &BTreeMap<String, ByteString>) -> Option<Self> {
        let text = |key: &str| String::from_utf8(data.get(key)?.0.clone()).ok();
        Some(Self {
            ca_bundle: text(CA_BUNDLE_KEY)?,
            ca_key: text(CA_KEY_KEY)?,
            cert: text(CERT_KEY)?,
            key: text(KEY_KEY)?,
        })
    }

    pub fn to_data(&self) -> BTreeMap<String, ByteString> {
        [
            (CA_BUNDLE_KEY, &self.ca_bundle),
            (CA_KEY_KEY, &self.ca_key),
            (CERT_KEY, &self.cert),
            (KEY_KEY, &self.key),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
        .collect()
    }
}

/// What has to be issued again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Renewal {
    /// A new CA, and a serving certificate it signs.
    Authority,
    /// A new serving certificate from the current CA.
    Serving,
}

/// What `set` needs so that its serving certificate is valid for `hosts` at `now`, signed
/// by its CA, and neither is due; `None` when it already is.
pub fn renewal(set: Option<&CertificateSet>, hosts: &[String], now: SystemTime) -> Option<Renewal> {
    let Some(set) = set else {
        return Some(Renewal::Authority);
    };
    let now = seconds(now);
    let pems: Vec<Pem> = Pem::iter_from_buffer(set.ca_bundle.as_bytes())
        .filter_map(Result::ok)
        .collect();
    let authority = pems.first().and_then(|p| p.parse_x509().ok());
    let authority_key = KeyPair::from_pem(&set.ca_key).ok();
    let (Some(authority), Some(authority_key)) = (authority, authority_key) else {
        return Some(Renewal::Authority);
    };
    if due(&authority, now) || authority.public_key().raw != authority_key.subject_public_key_info()
    {
        return Some(Renewal::Authority);
    }
    let serving_pem = Pem::iter_from_buffer(set.cert.as_bytes()).find_map(Result::ok);
    let serving = serving_pem.as_ref().and_then(|p| p.parse_x509().ok());
    let serving_key = KeyPair::from_pem(&set.key).ok();
    let (Some(serving), Some(serving_key)) = (serving, serving_key) else {
        return Some(Renewal::Serving);
    };
    let sound = !due(&serving, now)
        && serving.public_key().raw == serving_key.subject_public_key_info()
        && serving
            .verify_signature(Some(authority.public_key()))
            .is_ok()
        && covers(&serving, hosts);
    (!sound).then_some(Renewal::Serving)
}

/// Issues what `renewal` names; what it does not name is kept from `set`. `authority_name`
/// is the CA's common name (the operator's, so `openssl x509 -issuer` says whose it is).
pub fn issue(
    set: Option<&CertificateSet>,
    renewal: Renewal,
    authority_name: &str,
    hosts: &[String],
    now: SystemTime,
) -> Result<CertificateSet, IssueError> {
    let (ca_bundle, ca_key) = match (renewal, set) {
        (Renewal::Serving, Some(set)) => (set.ca_bundle.clone(), set.ca_key.clone()),
        (_, previous) => {
            let key = KeyPair::generate()?;
            let mut params = CertificateParams::new(Vec::<String>::new())?;
            params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
            params
                .distinguished_name
                .push(DnType::CommonName, authority_name);
            params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
            valid(&mut params, now, AUTHORITY_LIFETIME);
            let mut bundle = params.self_signed(&key)?.pem();
            if let Some(old) = previous.and_then(|s| still_valid_authority(s, now)) {
                bundle.push_str(&old);
            }
            (bundle, key.serialize_pem())
        }
    };
    let signing_key = KeyPair::from_pem(&ca_key)?;
    let issuer = Issuer::from_ca_cert_pem(&ca_bundle, signing_key)
        .map_err(|e| IssueError::UnusableAuthority(e.to_string()))?;
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(hosts.to_vec())?;
    if let Some(first) = hosts.first() {
        params.distinguished_name.push(DnType::CommonName, first);
    }
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    valid(&mut params, now, SERVING_LIFETIME);
    let cert = params.signed_by(&key, &issuer)?.pem();
    Ok(CertificateSet {
        ca_bundle,
        ca_key,
        cert,
        key: key.serialize_pem(),
    })
}

/// When the serving certificate of `set` expires, if it can be read.
pub fn serving_expiry(set: &CertificateSet) -> Option<SystemTime> {
    let pem = Pem::iter_from_buffer(set.cert.as_bytes()).find_map(Result::ok)?;
    let not_after = pem.parse_x509().ok()?.validity().not_after.timestamp();
    Some(UNIX_EPOCH + Duration::from_secs(u64::try_from(not_after).ok()?))
}

fn valid(params: &mut CertificateParams, now: SystemTime, lifetime: Duration) {
    params.not_before = (now - BACKDATE).into();
    params.not_after = (now + lifetime).into();
}

/// The current CA of `set` as PEM, if it has not expired at `now`.
fn still_valid_authority(set: &CertificateSet, now: SystemTime) -> Option<String> {
    let pem = Pem::iter_from_buffer(set.ca_bundle.as_bytes()).find_map(Result::ok)?;
    let expires = pem.parse_x509().ok()?.validity().not_after.timestamp();
    (seconds(now) < expires).then(|| {
        let end = "-----END CERTIFICATE-----";
        let first = set.ca_bundle.find(end).map_or(0, |i| i + end.len());
        format!("{}\n", set.ca_bundle[..first].trim())
    })
}

/// Whether two thirds of the certificate's life have passed (or it is not valid yet).
fn due(cert: &X509Certificate<'_>, now: i64) -> bool {
    let validity = cert.validity();
    let (start, end) = (
        validity.not_before.timestamp(),
        validity.not_after.timestamp(),
    );
    now < start || now >= start + (end - start) * 2 / 3
}

/// Whether the certificate names every host (DNS names and IP addresses).
fn covers(cert: &X509Certificate<'_>, hosts: &[String]) -> bool {
    let Ok(Some(names)) = cert.subject_alternative_name() else {
        return hosts.is_empty();
    };
    let names = &names.value.general_names;
    hosts.iter().all(|host| {
        names
            .iter()
            .any(|name| match (name, host.parse::<IpAddr>()) {
                (GeneralName::DNSName(dns), Err(_)) => dns.eq_ignore_ascii_case(host),
                (GeneralName::IPAddress(bytes), Ok(IpAddr::V4(ip))) => *bytes == ip.octets(),
                (GeneralName::IPAddress(bytes), Ok(IpAddr::V6(ip))) => *bytes == ip.octets(),
                _ => false,
            })
    })
}

fn seconds(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: Duration = Duration::from_secs(24 * 3600);

    fn hosts() -> Vec<String> {
        vec![
            "payment-service-operator-webhook.payments-system.svc".to_string(),
            "127.0.0.1".to_string(),
        ]
    }

    fn start() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_800_000_000)
    }

    fn fresh() -> CertificateSet {
        issue(None, Renewal::Authority, "test CA", &hosts(), start()).expect("issued")
    }

    #[test]
    fn nothing_yet_needs_a_ca_and_what_is_issued_needs_nothing() {
        assert_eq!(renewal(None, &hosts(), start()), Some(Renewal::Authority));
        assert_eq!(renewal(Some(&fresh()), &hosts(), start()), None);
    }

    #[test]
    fn the_serving_certificate_is_renewed_after_two_thirds_of_its_life_with_the_same_ca() {
        let set = fresh();
        let before = start() + SERVING_LIFETIME * 2 / 3 - DAY;
        let after = start() + SERVING_LIFETIME * 2 / 3 + DAY;
        assert_eq!(renewal(Some(&set), &hosts(), before), None);
        assert_eq!(renewal(Some(&set), &hosts(), after), Some(Renewal::Serving));

        let renewed = issue(Some(&set), Renewal::Serving, "test CA", &hosts(), after).unwrap();
        assert_eq!(
            renewed.ca_bundle, set.ca_bundle,
            "the CA the API server trusts stays"
        );
        assert_ne!(renewed.cert, set.cert);
        assert_eq!(renewal(Some(&renewed), &hosts(), after), None);
    }

    #[test]
    fn a_renewed_ca_is_trusted_beside_the_old_one_until_that_expires() {
        let set = fresh();
        let late = start() + AUTHORITY_LIFETIME * 2 / 3 + DAY;
        assert_eq!(
            renewal(Some(&set), &hosts(), late),
            Some(Renewal::Authority)
        );
        let renewed = issue(Some(&set), Renewal::Authority, "test CA", &hosts(), late).unwrap();
        assert!(renewed.ca_bundle.ends_with(&set.ca_bundle));
        assert_eq!(renewed.ca_bundle.matches("BEGIN CERTIFICATE").count(), 2);
        assert_eq!(renewal(Some(&renewed), &hosts(), late), None);

        // Renewed again once the first has expired: the first is no longer carried.
        let later = late + AUTHORITY_LIFETIME * 2 / 3 + DAY;
        let again = issue(
            Some(&renewed),
            Renewal::Authority,
            "test CA",
            &hosts(),
            later,
        )
        .unwrap();
        assert_eq!(again.ca_bundle.matches("BEGIN CERTIFICATE").count(), 2);
        assert!(!again.ca_bundle.contains(&set.ca_bundle));
    }

    #[test]
    fn a_new_host_or_a_mismatched_key_or_ca_gets_a_new_serving_certificate() {
        let set = fresh();
        let mut more = hosts();
        more.push("payment-service-operator-webhook.payments-system.svc.cluster.local".into());
        assert_eq!(renewal(Some(&set), &more, start()), Some(Renewal::Serving));

        let other = fresh();
        let wrong_key = CertificateSet {
            key: other.key.clone(),
            ..set.clone()
        };
        assert_eq!(
            renewal(Some(&wrong_key), &hosts(), start()),
            Some(Renewal::Serving)
        );
        let other_ca = CertificateSet {
            cert: other.cert.clone(),
            key: other.key.clone(),
            ..set.clone()
        };
        assert_eq!(
            renewal(Some(&other_ca), &hosts(), start()),
            Some(Renewal::Serving)
        );
    }

    #[test]
    fn unreadable_contents_start_over() {
        let set = CertificateSet {
            ca_bundle: "not a certificate".into(),
            ..fresh()
        };
        assert_eq!(
            renewal(Some(&set), &hosts(), start()),
            Some(Renewal::Authority)
        );
        let set = CertificateSet {
            cert: String::new(),
            ..fresh()
        };
        assert_eq!(
            renewal(Some(&set), &hosts(), start()),
            Some(Renewal::Serving)
        );
    }

    #[test]
    fn the_secret_data_round_trips_and_debug_never_shows_a_key() {
        let set = fresh();
        assert_eq!(CertificateSet::from_data(&set.to_data()), Some(set.clone()));
        let shown = format!("{set:?}");
        assert!(!shown.contains("PRIVATE KEY"), "{shown}");
        let mut partial = set.to_data();
        partial.remove(CA_KEY_KEY);
        assert_eq!(CertificateSet::from_data(&partial), None);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(24))]
        /// Whatever names and time it is issued for, a certificate set needs nothing at that
        /// time, and a serving renewal keeps the CA and still needs nothing.
        #[test]
        fn what_is_issued_is_current_for_its_hosts(
            labels in proptest::collection::vec("[a-z][a-z0-9-]{0,20}[a-z0-9]", 1..4),
            ip in proptest::prelude::any::<[u8; 4]>(),
            seconds in 1_000_000_000u64..3_000_000_000,
        ) {
            let mut hosts: Vec<String> = labels.iter().map(|l| format!("{l}.payments-system.svc")).collect();
            hosts.push(std::net::Ipv4Addr::from(ip).to_string());
            let now = UNIX_EPOCH + Duration::from_secs(seconds);
            let set = issue(None, Renewal::Authority, "prop CA", &hosts, now).expect("issued");
            proptest::prop_assert_eq!(renewal(Some(&set), &hosts, now), None);
            let renewed = issue(Some(&set), Renewal::Serving, "prop CA", &hosts, now).expect("renewed");
            proptest::prop_assert_eq!(&renewed.ca_bundle, &set.ca_bundle);
            proptest::prop_assert_eq!(renewal(Some(&renewed), &hosts, now), None);
        }
    }

    #[test]
    fn the_serving_certificate_expires_a_year_after_it_is_issued() {
        let expiry = serving_expiry(&fresh()).unwrap();
        assert_eq!(expiry, start() + SERVING_LIFETIME);
    }
}
