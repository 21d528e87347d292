//! The client against a stand-in Prometheus on loopback: what it sends, what it reads, and
//! every way a query can go wrong.

use std::sync::Mutex;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::*;

/// A one-connection stand-in: answers `status` and `body` (or nothing, when `body` is
/// `None`) and hands back the request it read.
async fn stand_in(status: u16, body: Option<&'static str>) -> (String, Arc<Mutex<String>>) {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let url = format!(
        "http://{}",
        listener
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default()
    );
    let seen = Arc::new(Mutex::new(String::new()));
    let record = seen.clone();
    tokio::spawn(async move {
        let Ok((mut socket, _)) = listener.accept().await else {
            return;
        };
        let mut buffer = vec![0; 8192];
        let read = socket.read(&mut buffer).await.unwrap_or(0);
        if let Ok(mut seen) = record.lock() {
            *seen = String::from_utf8_lossy(&buffer[..read]).into_owned();
        }
        let Some(body) = body else {
            tokio::time::sleep(Duration::from_secs(30)).await;
            return;
        };
        let response = format!(
            "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        let _ = socket.write_all(response.as_bytes()).await;
    });
    (url, seen)
}

fn client(url: &str) -> Prometheus {
    Prometheus::new(PrometheusSettings {
        url: url.into(),
        bearer_token_file: None,
        ca_file: None,
        timeout: Duration::from_millis(500),
    })
}

const VECTOR: &str = r#"{"status":"success","data":{"resultType":"vector","result":[
  {"metric":{"status":"success","service":"card-clearing"},"value":[1765000000.1,"990"]},
  {"metric":{"status":"failed","service":"card-clearing"},"value":[1765000000.1,"NaN"]}]}}"#;

#[tokio::test]
async fn a_vector_answer_is_read_series_by_series_and_the_query_sent_encoded() {
    let (url, seen) = stand_in(200, Some(VECTOR)).await;
    let token = std::env::temp_dir().join(format!("prom-token-{}", std::process::id()));
    std::fs::write(&token, "s3cret\n").unwrap_or_default();
    let prometheus = Prometheus::new(PrometheusSettings {
        url: format!("{url}/prom/"),
        bearer_token_file: Some(token.clone()),
        ca_file: None,
        timeout: Duration::from_secs(2),
    });
    let query =
        r#"sum by (status) (payment_processor_transactions_total{service="card-clearing"})"#;
    let samples = prometheus.query(query).await;
    let _ = std::fs::remove_file(token);
    let samples = samples.unwrap_or_default();
    assert_eq!(samples.len(), 2);
    assert_eq!(samples[0].labels["status"], "success");
    assert_eq!(samples[0].value, 990.0);
    assert!(samples[1].value.is_nan());
    let request = seen.lock().map(|s| s.clone()).unwrap_or_default();
    let first_line = request.lines().next().unwrap_or_default();
    assert_eq!(
        first_line,
        "GET /prom/api/v1/query?query=sum+by+%28status%29+%28payment_processor_transactions_total%7Bservice%3D%22card-clearing%22%7D%29 HTTP/1.1"
    );
    assert!(
        request
            .to_lowercase()
            .contains("authorization: bearer s3cret\r\n"),
        "{request}"
    );
}

#[tokio::test]
async fn a_scalar_answer_is_one_sample_without_labels() {
    let (url, _) = stand_in(
        200,
        Some(r#"{"status":"success","data":{"resultType":"scalar","result":[1.5,"0.97"]}}"#),
    )
    .await;
    let samples = client(&url).query("scalar(vector(0.97))").await;
    assert_eq!(
        samples,
        Ok(vec![Sample {
            labels: BTreeMap::new(),
            value: 0.97
        }])
    );
}

#[tokio::test]
async fn a_refused_query_says_why_in_prometheus_words() {
    let (url, _) = stand_in(
        400,
        Some(r#"{"status":"error","errorType":"bad_data","error":"parse error at char 5"}"#),
    )
    .await;
    let error = client(&url).query("sum(").await;
    assert_eq!(
        error,
        Err(QueryError::Refused {
            kind: "bad_data".into(),
            message: "parse error at char 5".into()
        })
    );
}

#[tokio::test]
async fn a_proxy_error_page_is_an_http_error_with_its_text() {
    let (url, _) = stand_in(502, Some("bad gateway")).await;
    let error = client(&url).query("up").await;
    assert_eq!(
        error,
        Err(QueryError::Http {
            status: 502,
            body: "bad gateway".into()
        })
    );
}

#[tokio::test]
async fn a_prometheus_that_does_not_answer_is_given_up_on_at_the_timeout() {
    let (url, _) = stand_in(200, None).await;
    let started = tokio::time::Instant::now();
    let error = client(&url).query("up").await;
    assert_eq!(error, Err(QueryError::Timeout(Duration::from_millis(500))));
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn a_prometheus_that_is_not_there_is_unreachable_naming_its_url() {
    let closed = TcpListener::bind("127.0.0.1:0")
        .await
        .map(|l| l.local_addr());
    let url = format!(
        "http://{}",
        closed
            .ok()
            .and_then(Result::ok)
            .map(|a| a.to_string())
            .unwrap_or_default()
    );
    let error = client(&url).query("up").await;
    match error {
        Err(QueryError::Unreachable { url: named, .. }) => assert_eq!(named, url),
        other => panic!("{other:?}"),
    }
}

#[test]
fn settings_that_cannot_work_are_refused_by_name() {
    let settings = |url: &str, ca: Option<&str>| PrometheusSettings {
        url: url.into(),
        bearer_token_file: None,
        ca_file: ca.map(PathBuf::from),
        timeout: PrometheusSettings::TIMEOUT,
    };
    assert_eq!(
        settings("http://prometheus.monitoring:9090", None).check(),
        Ok(())
    );
    assert!(settings("prometheus:9090", None).check().is_err());
    assert!(settings("ftp://prometheus", None).check().is_err());
    let missing = settings("https://prometheus", Some("/nonexistent/ca.pem")).check();
    assert!(missing.is_err_and(|e| e.contains("/nonexistent/ca.pem")));
}
