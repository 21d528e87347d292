//! A Prometheus a test scripts: every query gets the one answer the test last set (a value,
//! no series, or an error), and the queries asked are kept for the test to read.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use futures::future::BoxFuture;
use operator_core::prometheus::{MetricsQuery, QueryError, Sample};

#[derive(Clone, Debug)]
enum Answer {
    Value(f64),
    NoSeries,
    Down,
}

/// Answers every query alike; see the module.
#[derive(Clone, Debug)]
pub struct ScriptedPrometheus {
    answer: Arc<Mutex<Answer>>,
    asked: Arc<Mutex<Vec<String>>>,
}

impl Default for ScriptedPrometheus {
    fn default() -> Self {
        Self {
            answer: Arc::new(Mutex::new(Answer::NoSeries)),
            asked: Arc::default(),
        }
    }
}

impl ScriptedPrometheus {
    /// Answers one series of `value` from now on.
    pub fn answer(&self, value: f64) {
        self.set(Answer::Value(value));
    }

    /// Answers with no series from now on.
    pub fn no_series(&self) {
        self.set(Answer::NoSeries);
    }

    /// Cannot be reached from now on.
    pub fn go_down(&self) {
        self.set(Answer::Down);
    }

    /// The queries asked so far, in order.
    pub fn asked(&self) -> Vec<String> {
        self.asked
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// As the operator takes it.
    pub fn shared(&self) -> Arc<dyn MetricsQuery> {
        Arc::new(self.clone())
    }

    fn set(&self, answer: Answer) {
        *self.answer.lock().unwrap_or_else(PoisonError::into_inner) = answer;
    }
}

impl MetricsQuery for ScriptedPrometheus {
    fn query<'a>(&'a self, promql: &'a str) -> BoxFuture<'a, Result<Vec<Sample>, QueryError>> {
        self.asked
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(promql.to_string());
        let answer = match &*self.answer.lock().unwrap_or_else(PoisonError::into_inner) {
            Answer::Value(value) => Ok(vec![Sample {
                labels: BTreeMap::new(),
                value: *value,
            }]),
            Answer::NoSeries => Ok(Vec::new()),
            Answer::Down => Err(QueryError::Unreachable {
                url: "http://127.0.0.1:9".into(),
                why: "connection refused".into(),
            }),
        };
        Box::pin(async move { answer })
    }
}
