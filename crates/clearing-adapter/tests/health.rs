//! The real partner check against a local https partner with a CA of its own: healthy,
//! unhealthy, an untrusted certificate, nothing listening, and a partner that never answers.

use std::time::Duration;

use anyhow::Result;
use clearing_adapter::health::{HttpsProbe, PartnerProbe, ProbeTarget};
use operator_core::credentials::Hidden;
use testkit::partner::PartnerStandIn;

fn target(url: String, ca_pem: Option<&str>) -> ProbeTarget {
    ProbeTarget {
        partner: "acme-bank".into(),
        url,
        ca_pem: ca_pem.map(|p| p.as_bytes().to_vec()),
        client_identity: None,
        timeout: Duration::from_secs(2),
    }
}

#[tokio::test]
async fn a_partner_is_healthy_while_its_endpoint_answers_2xx_over_trusted_tls() -> Result<()> {
    let partner = PartnerStandIn::start().await?;
    let t = target(format!("{}/health", partner.url()), Some(partner.ca_pem()));
    let verdict = HttpsProbe.check(&t).await;
    assert!(verdict.healthy, "{verdict:?}");
    assert_eq!(verdict.message, "HTTP 200");
    partner.set_healthy(false);
    let verdict = HttpsProbe.check(&t).await;
    assert!(!verdict.healthy);
    assert_eq!(verdict.message, "HTTP 503");
    assert_eq!(partner.requests(), 2);
    Ok(())
}

#[tokio::test]
async fn a_certificate_the_partners_ca_did_not_sign_fails_the_check() -> Result<()> {
    let partner = PartnerStandIn::start().await?;
    let other = PartnerStandIn::start().await?;
    let verdict = HttpsProbe
        .check(&target(
            format!("{}/health", partner.url()),
            Some(other.ca_pem()),
        ))
        .await;
    assert!(!verdict.healthy);
    assert!(
        verdict.message.starts_with("TLS with 127.0.0.1"),
        "{}",
        verdict.message
    );
    assert_eq!(
        partner.requests(),
        0,
        "no request over an untrusted connection"
    );
    let bad_bundle = HttpsProbe
        .check(&target(
            format!("{}/health", partner.url()),
            Some("not a certificate"),
        ))
        .await;
    assert_eq!(bad_bundle.message, "the CA bundle holds no certificate");
    Ok(())
}

#[tokio::test]
async fn nothing_listening_and_no_answer_are_failures_within_the_timeout() -> Result<()> {
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.local_addr()?.port()
    };
    let refused = HttpsProbe
        .check(&target(format!("https://127.0.0.1:{closed}/health"), None))
        .await;
    assert!(!refused.healthy);
    assert!(
        refused.message.starts_with("connecting to 127.0.0.1"),
        "{}",
        refused.message
    );

    // Accepts connections, never speaks TLS.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = silent.local_addr()?.port();
    let _held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((tcp, _)) = silent.accept().await {
            open.push(tcp);
        }
    });
    let mut t = target(format!("https://127.0.0.1:{port}/health"), None);
    t.timeout = Duration::from_millis(300);
    let started = std::time::Instant::now();
    let verdict = HttpsProbe.check(&t).await;
    assert!(!verdict.healthy);
    assert_eq!(verdict.message, "no answer within 0.3s");
    assert!(started.elapsed() < Duration::from_secs(2));
    Ok(())
}

#[tokio::test]
async fn a_partner_asking_for_mutual_tls_gets_the_adapters_client_certificate() -> Result<()> {
    let partner = PartnerStandIn::start_mutual().await?;
    let (chain, key) = partner
        .client_identity()
        .ok_or_else(|| anyhow::anyhow!("a mutual-TLS stand-in has a client identity"))?;
    let mut t = target(format!("{}/health", partner.url()), Some(partner.ca_pem()));
    t.client_identity = Some(Hidden::new((
        chain.as_bytes().to_vec(),
        key.as_bytes().to_vec(),
    )));
    let verdict = HttpsProbe.check(&t).await;
    assert!(verdict.healthy, "{verdict:?}");
    let logged = format!("{t:?}");
    assert!(
        !logged.contains("PRIVATE KEY") && logged.contains("<hidden>"),
        "the client key stays out of logs: {logged}"
    );

    let anonymous = HttpsProbe
        .check(&target(
            format!("{}/health", partner.url()),
            Some(partner.ca_pem()),
        ))
        .await;
    assert!(!anonymous.healthy, "{anonymous:?}");
    assert_eq!(
        partner.requests(),
        1,
        "only the authenticated request was served"
    );
    Ok(())
}
