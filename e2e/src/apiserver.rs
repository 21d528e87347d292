//! The API server's own account of what it was asked: `apiserver_request_total` from its
//! `/metrics`, so "a converged operator writes nothing" is measured where it counts.

use std::collections::BTreeMap;

use anyhow::{Context, Result};

/// One series of `apiserver_request_total`: its labels and count.
pub type Series = BTreeMap<String, String>;

/// The verbs that change stored state.
const WRITES: [&str; 6] = [
    "POST",
    "PUT",
    "PATCH",
    "APPLY",
    "DELETE",
    "DELETECOLLECTION",
];

/// Every `apiserver_request_total` series now.
pub async fn request_totals(admin: &kube::Client) -> Result<Vec<(Series, f64)>> {
    let request = http::Request::get("/metrics").body(Vec::new())?;
    let text = admin
        .request_text(request)
        .await
        .context("reading the API server's /metrics (needs the admin user)")?;
    Ok(parse(&text))
}

fn parse(text: &str) -> Vec<(Series, f64)> {
    text.lines()
        .filter_map(|line| line.strip_prefix("apiserver_request_total{"))
        .filter_map(|rest| {
            let (labels, value) = rest.rsplit_once("} ")?;
            let series = labels
                .split("\",")
                .filter_map(|pair| {
                    let (k, v) = pair.split_once("=\"")?;
                    Some((k.to_string(), v.trim_end_matches('"').to_string()))
                })
                .collect();
            Some((series, value.trim().parse().ok()?))
        })
        .collect()
}

/// Writes the server has answered to `(group, resource, subresource)` (`""` for the main
/// resource), summed over every code.
pub fn writes(totals: &[(Series, f64)], targets: &[(&str, &str, &str)]) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for (series, count) in totals {
        let get = |k: &str| series.get(k).map(String::as_str).unwrap_or_default();
        if !WRITES.contains(&get("verb")) {
            continue;
        }
        if targets.iter().any(|(g, r, s)| {
            get("group") == *g && get("resource") == *r && get("subresource") == *s
        }) {
            let key = format!(
                "{} {}/{}{}",
                get("verb"),
                get("group"),
                get("resource"),
                match get("subresource") {
                    "" => String::new(),
                    s => format!("/{s}"),
                }
            );
            *out.entry(key).or_default() += count;
        }
    }
    out
}

/// What changed between two readings of [`writes`].
pub fn delta(
    before: &BTreeMap<String, f64>,
    after: &BTreeMap<String, f64>,
) -> BTreeMap<String, f64> {
    after
        .iter()
        .filter_map(|(k, v)| {
            let d = v - before.get(k).copied().unwrap_or_default();
            (d > 0.0).then(|| (k.clone(), d))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_series_the_server_exports() {
        let text = r#"# HELP apiserver_request_total x
apiserver_request_total{code="200",component="apiserver",dry_run="",group="apps",resource="deployments",scope="resource",subresource="",verb="APPLY",version="v1"} 4
apiserver_request_total{code="201",component="apiserver",dry_run="",group="",resource="configmaps",scope="resource",subresource="",verb="POST",version="v1"} 1
apiserver_request_total{code="200",component="apiserver",dry_run="",group="apps",resource="deployments",scope="resource",subresource="status",verb="PUT",version="v1"} 9
apiserver_request_total{code="200",component="apiserver",dry_run="",group="apps",resource="deployments",scope="namespace",subresource="",verb="LIST",version="v1"} 2
"#;
        let totals = parse(text);
        assert_eq!(totals.len(), 4);
        let w = writes(&totals, &[("apps", "deployments", "")]);
        assert_eq!(w.get("APPLY apps/deployments"), Some(&4.0));
        assert_eq!(w.len(), 1, "status writes and reads are not counted: {w:?}");
        let mut later = w.clone();
        later.insert("APPLY apps/deployments".into(), 6.0);
        assert_eq!(delta(&w, &later).get("APPLY apps/deployments"), Some(&2.0));
    }
}
