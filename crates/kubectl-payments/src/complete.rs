//! Shell completion of `kubectl payments …`. kubectl (1.26 or later) completes a plugin by
//! running an executable named `kubectl_complete-payments` found on PATH with the words typed
//! after `payments` (the last one the word being completed, maybe empty), and reads the answer
//! in the format of Cobra's `__complete` command, kubectl's own: one candidate a line
//! (`value<TAB>description`), then `:<directive>`. [`SCRIPT`] is that executable; it asks this
//! binary (`kubectl-payments __complete WORDS…`).
//!
//! Subcommands and flags come from the parser's own definition ([`crate::cli::Cli`]); resource
//! names (`ps/<TAB>`) and namespaces (`-n <TAB>`) from the cluster, as kubectl's own do.

use clap::CommandFactory;
use k8s_openapi::api::core::v1::Namespace;
use kube::Client;
use kube::api::{Api, ListParams};

use crate::actions;
use crate::cli::Cli;
use crate::kinds::{self, Kind};

/// `kubectl payments completion` prints it; saved as an executable `kubectl_complete-payments`
/// on PATH, it gives `kubectl payments` completion in every shell kubectl completes.
pub const SCRIPT: &str = "#!/bin/sh\n\
# Completion of `kubectl payments` (kubectl 1.26+ runs this file when found on PATH as\n\
# kubectl_complete-payments). Written by `kubectl payments completion`.\n\
exec kubectl-payments __complete \"$@\"\n";

/// The hidden subcommand kubectl's completion calls.
pub const COMPLETE_COMMAND: &str = "__complete";

/// Cobra's directive: no space after the candidate (a `KIND/` that a name follows).
const NO_SPACE: u8 = 2;
/// Cobra's directive: do not offer file names instead.
const NO_FILE: u8 = 4;

/// The answer to one completion request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Completions {
    /// Each candidate with its description (may be empty).
    pub candidates: Vec<(String, String)>,
    pub directive: u8,
}

impl Completions {
    fn of(candidates: Vec<(String, String)>) -> Self {
        Self {
            candidates,
            directive: NO_FILE,
        }
    }

    /// The answer as kubectl reads it.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for (value, description) in &self.candidates {
            out.push_str(value);
            if !description.is_empty() {
                out.push('\t');
                out.push_str(description);
            }
            out.push('\n');
        }
        out.push_str(&format!(":{}\n", self.directive));
        out
    }
}

/// What completing the typed words needs.
#[derive(Clone, Debug)]
pub enum Want {
    /// Known without the cluster.
    Fixed(Completions),
    /// `<kind word>/<name>` of the objects of `kind` in `namespace` (the context's when
    /// `None`) whose names start with `prefix`.
    Names {
        kind: Kind,
        kind_word: String,
        prefix: String,
        namespace: Option<String>,
    },
    /// The cluster's namespaces that start with `prefix`.
    Namespaces { prefix: String },
}

/// What may follow `words` (the words after `kubectl payments`; the last is the one being
/// completed).
pub fn want(words: &[String]) -> Want {
    let mut command = Cli::command();
    command.build();
    let (current, typed) = match words.split_last() {
        Some((current, typed)) => (current.as_str(), typed),
        None => ("", &[][..]),
    };
    let mut subcommand: Option<&clap::Command> = None;
    let mut namespace = None;
    let mut positionals = 0;
    let mut awaiting: Option<&clap::Arg> = None;
    for word in typed {
        let scope = subcommand.unwrap_or(&command);
        if let Some(flag) = awaiting.take() {
            if flag.get_id() == "namespace" {
                namespace = Some(word.clone());
            }
            continue;
        }
        if word.starts_with('-') {
            let (name, inline) = match word.split_once('=') {
                Some((name, value)) => (name, Some(value)),
                None => (word.as_str(), None),
            };
            if let Some(flag) = find_flag(scope, name) {
                match inline {
                    Some(value) if flag.get_id() == "namespace" => {
                        namespace = Some(value.to_string());
                    }
                    None if flag.get_action().takes_values() => awaiting = Some(flag),
                    _ => {}
                }
            }
            continue;
        }
        match subcommand {
            None => subcommand = command.find_subcommand(word),
            Some(_) => positionals += 1,
        }
    }
    let scope = subcommand.unwrap_or(&command);
    if let Some(flag) = awaiting {
        return value_of(flag, current);
    }
    if current.starts_with('-') {
        let flags = scope
            .get_arguments()
            .filter(|a| !a.is_positional() && !a.is_hide_set())
            .filter_map(|a| Some((format!("--{}", a.get_long()?), help(a.get_help()))))
            .filter(|(flag, _)| flag.starts_with(current))
            .collect();
        return Want::Fixed(Completions::of(flags));
    }
    match subcommand {
        None => Want::Fixed(Completions::of(
            command
                .get_subcommands()
                .filter(|s| !s.is_hide_set() && s.get_name().starts_with(current))
                .map(|s| (s.get_name().to_string(), help(s.get_about())))
                .collect(),
        )),
        Some(sub) if positionals == 0 && sub.get_positionals().next().is_some() => {
            target(sub.get_name(), current, namespace)
        }
        Some(_) => Want::Fixed(Completions::of(Vec::new())),
    }
}

/// The long or short flag `name` (`--output`, `-o`) of `scope`.
fn find_flag<'a>(scope: &'a clap::Command, name: &str) -> Option<&'a clap::Arg> {
    scope.get_arguments().find(|a| {
        if let Some(long) = name.strip_prefix("--") {
            a.get_long() == Some(long)
        } else {
            let short = name.strip_prefix('-').and_then(|s| s.chars().next());
            short.is_some() && a.get_short() == short
        }
    })
}

/// The values a flag takes: namespaces from the cluster, or the flag's fixed ones.
fn value_of(flag: &clap::Arg, current: &str) -> Want {
    if flag.get_id() == "namespace" {
        return Want::Namespaces {
            prefix: current.to_string(),
        };
    }
    Want::Fixed(Completions::of(
        flag.get_possible_values()
            .iter()
            .filter(|v| !v.is_hide_set() && v.get_name().starts_with(current))
            .map(|v| (v.get_name().to_string(), help(v.get_help())))
            .collect(),
    ))
}

/// `KIND/NAME` for `subcommand`: its kinds' short names first, then the names of that kind.
fn target(subcommand: &str, current: &str, namespace: Option<String>) -> Want {
    let only = actions::kind_of(subcommand);
    let kinds: Vec<Kind> = kinds::all()
        .into_iter()
        .filter(|k| only.is_none_or(|kind| k.resource.kind == kind))
        .collect();
    if let Some((word, prefix)) = current.split_once('/')
        && let Ok((kind, _)) = kinds::target(&format!("{word}/-"))
        && kinds.iter().any(|k| k.resource.kind == kind.resource.kind)
    {
        return Want::Names {
            kind,
            kind_word: word.to_string(),
            prefix: prefix.to_string(),
            namespace,
        };
    }
    Want::Fixed(Completions {
        candidates: kinds
            .iter()
            .map(|k| (format!("{}/", k.short_name), k.resource.kind.clone()))
            .filter(|(word, _)| word.starts_with(current))
            .collect(),
        directive: NO_SPACE | NO_FILE,
    })
}

fn help(text: Option<&clap::builder::StyledStr>) -> String {
    text.map(|t| t.to_string().lines().next().unwrap_or_default().to_string())
        .unwrap_or_default()
}

/// Answers `want`, asking the cluster where it must; a cluster that cannot be reached
/// gives no candidates (completion never prints an error into the command line).
pub async fn answer(want: Want, client: Option<Client>) -> Completions {
    let (Want::Names { .. } | Want::Namespaces { .. }, Some(client)) = (&want, client) else {
        return match want {
            Want::Fixed(fixed) => fixed,
            _ => Completions::of(Vec::new()),
        };
    };
    let names = match &want {
        Want::Names {
            kind,
            kind_word,
            prefix,
            namespace,
        } => {
            let namespace = namespace
                .clone()
                .unwrap_or_else(|| client.default_namespace().to_string());
            names(kind.api(&client, Some(&namespace)), prefix)
                .await
                .into_iter()
                .map(|name| format!("{kind_word}/{name}"))
                .collect()
        }
        Want::Namespaces { prefix } => names(Api::<Namespace>::all(client), prefix).await,
        Want::Fixed(_) => Vec::new(),
    };
    Completions::of(names.into_iter().map(|n| (n, String::new())).collect())
}

/// The names of `api`'s objects that start with `prefix` (none when the list fails).
async fn names<K>(api: Api<K>, prefix: &str) -> Vec<String>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let Ok(list) = api.list_metadata(&ListParams::default()).await else {
        return Vec::new();
    };
    list.items
        .into_iter()
        .filter_map(|o| o.metadata.name)
        .filter(|n| n.starts_with(prefix))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixed(words: &[&str]) -> Completions {
        let words: Vec<String> = words.iter().map(|w| w.to_string()).collect();
        match want(&words) {
            Want::Fixed(c) => c,
            other => panic!("expected fixed candidates, got {other:?}"),
        }
    }

    fn values(c: &Completions) -> Vec<&str> {
        c.candidates.iter().map(|(v, _)| v.as_str()).collect()
    }

    #[test]
    fn subcommands_complete_from_the_parser_with_their_descriptions() {
        let all = fixed(&[""]);
        for sub in [
            "status",
            "why",
            "pause",
            "resume",
            "promote",
            "abort",
            "drain",
            "restore",
            "run-now",
            "resume-trading",
            "backup",
            "completion",
        ] {
            assert!(values(&all).contains(&sub), "{sub} in {all:?}");
        }
        assert_eq!(
            values(&fixed(&["res"])),
            ["resume", "resume-trading", "restore"]
        );
        assert_eq!(all.directive, NO_FILE);
        let status = all.candidates.iter().find(|(v, _)| v == "status");
        assert!(status.is_some_and(|(_, d)| d.starts_with("Every PaymentService")));
    }

    #[test]
    fn a_target_completes_to_the_kinds_its_request_is_for() {
        let any = fixed(&["pause", ""]);
        assert_eq!(values(&any), ["ps/", "bp/", "ca/", "so/", "ta/"]);
        assert_eq!(
            any.directive,
            NO_SPACE | NO_FILE,
            "a name follows the slash"
        );
        assert_eq!(values(&fixed(&["promote", ""])), ["ps/"]);
        assert_eq!(values(&fixed(&["run-now", ""])), ["bp/"]);
        assert_eq!(
            values(&fixed(&["-n", "payments", "resume-trading", "t"])),
            ["ta/"]
        );
        assert!(
            values(&fixed(&["promote", "ta/"])).is_empty(),
            "not a promote kind"
        );
        assert!(
            values(&fixed(&["why", "ps/x", ""])).is_empty(),
            "one target only"
        );
    }

    #[test]
    fn a_name_after_the_kind_is_looked_up_in_the_namespace_typed() {
        let words: Vec<String> = ["-n", "payments", "why", "paymentservice/led"]
            .iter()
            .map(|w| w.to_string())
            .collect();
        let Want::Names {
            kind,
            kind_word,
            prefix,
            namespace,
        } = want(&words)
        else {
            panic!("expected a lookup of names");
        };
        assert_eq!(kind.resource.kind, "PaymentService");
        assert_eq!(kind_word, "paymentservice");
        assert_eq!(prefix, "led");
        assert_eq!(namespace.as_deref(), Some("payments"));
        let words: Vec<String> = ["--namespace=trading-platform", "pause", "ta/"]
            .iter()
            .map(|w| w.to_string())
            .collect();
        assert!(matches!(
            want(&words),
            Want::Names { namespace: Some(ns), .. } if ns == "trading-platform"
        ));
    }

    #[test]
    fn flags_and_their_values_complete() {
        assert_eq!(
            values(&fixed(&["status", "-o", ""])),
            ["table", "json", "yaml"]
        );
        assert_eq!(values(&fixed(&["status", "--output", "j"])), ["json"]);
        let flags = fixed(&["status", "--"]);
        for flag in ["--all-namespaces", "--output", "--namespace"] {
            assert!(values(&flags).contains(&flag), "{flag} in {flags:?}");
        }
        assert_eq!(values(&fixed(&["pause", "--t"])), ["--timeout"]);
        let words = vec!["-n".to_string(), "pay".to_string()];
        assert!(matches!(want(&words), Want::Namespaces { prefix } if prefix == "pay"));
    }

    #[test]
    fn the_answer_is_in_cobras_format() {
        let c = Completions {
            candidates: vec![
                ("ps/".into(), "PaymentService".into()),
                ("x".into(), String::new()),
            ],
            directive: NO_SPACE | NO_FILE,
        };
        assert_eq!(c.render(), "ps/\tPaymentService\nx\n:6\n");
    }

    #[test]
    fn the_script_hands_every_word_to_the_binary() {
        assert!(SCRIPT.starts_with("#!/bin/sh\n"));
        assert!(SCRIPT.ends_with("exec kubectl-payments __complete \"$@\"\n"));
    }
}
