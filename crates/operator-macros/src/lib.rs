//! The attributes every operator's CRD types carry, said once. Re-exported by operator-core
//! as `operator_core::schema` and `operator_core::custom_resource`; see there.
//!
//! Written on `proc_macro` alone (no syn or quote): each macro puts fixed attributes in
//! front of the item it is given and passes the item's own tokens through untouched (a
//! status gains its standard fields after them), so error spans stay the user's.

use proc_macro::{Delimiter, Group, TokenStream, TokenTree};

/// A type inside a CRD's spec or status: `#[derive(KubeSchema, Serialize, Deserialize,
/// Clone, Debug, PartialEq)]` plus the derives given (`#[schema(Default, Eq)]`). A struct
/// also gets camelCase field names and absent options left out when serialized; an enum
/// derives `JsonSchema` and names its variants itself (`#[serde(rename_all = …)]`).
#[proc_macro_attribute]
pub fn schema(extra: TokenStream, item: TokenStream) -> TokenStream {
    let extra = derives_after(extra);
    let prefix = if is_enum(&item) {
        format!(
            "#[derive(::schemars::JsonSchema, ::serde::Serialize, ::serde::Deserialize, \
             Clone, Debug, PartialEq{extra})]"
        )
    } else {
        format!(
            "#[::serde_with::skip_serializing_none] \
             #[derive(::kube::KubeSchema, ::serde::Serialize, ::serde::Deserialize, \
             Clone, Debug, PartialEq{extra})] \
             #[serde(rename_all = \"camelCase\")]"
        )
    };
    prepend(&prefix, item)
}

/// A kind's status: `#[schema(Default)]`'s derives, the fields every operator's status has
/// after the struct's own, and `operator_core::reported_status!` for it:
/// `phase: Option<P>` for `phase = P`; `conditions`, documented by `conditions = "…"` (the
/// condition types it carries); and `observedGeneration`.
#[proc_macro_attribute]
pub fn resource_status(args: TokenStream, item: TokenStream) -> TokenStream {
    let phase = argument(&args, "phase").expect("#[resource_status(phase = <type>, …)]");
    let conditions = argument(&args, "conditions").unwrap_or_else(|| "Ready.".to_string());
    let fields: TokenStream = format!(
        "#[doc = \"Lifecycle phase.\"] pub phase: ::core::option::Option<{phase}>, \
         #[doc = {conditions:?}] \
         #[serde(default, skip_serializing_if = \"Vec::is_empty\")] \
         pub conditions: ::std::vec::Vec<::operator_core::status::Condition>, \
         #[doc = \"The generation of the spec this status describes.\"] \
         pub observed_generation: ::core::option::Option<i64>,"
    )
    .parse()
    .expect("fixed tokens");
    let mut name = None;
    let mut tokens: Vec<TokenTree> = item.into_iter().collect();
    for pair in tokens.windows(2) {
        if let [TokenTree::Ident(word), TokenTree::Ident(ident)] = pair
            && word.to_string() == "struct"
        {
            name = Some(ident.to_string());
        }
    }
    let name = name.expect("#[resource_status] goes on a struct");
    let body = tokens
        .iter_mut()
        .rev()
        .find(|t| matches!(t, TokenTree::Group(g) if g.delimiter() == Delimiter::Brace))
        .expect("#[resource_status] goes on a struct with named fields");
    if let TokenTree::Group(group) = body {
        let mut stream = group.stream();
        let own_fields_end_with_comma = stream
            .clone()
            .into_iter()
            .last()
            .is_none_or(|t| matches!(t, TokenTree::Punct(p) if p.as_char() == ','));
        if !own_fields_end_with_comma {
            stream.extend(",".parse::<TokenStream>().expect("fixed tokens"));
        }
        stream.extend(fields);
        let mut extended = Group::new(Delimiter::Brace, stream);
        extended.set_span(group.span());
        *body = TokenTree::Group(extended);
    }
    let mut out = schema(
        "Default".parse().expect("fixed tokens"),
        tokens.into_iter().collect(),
    );
    out.extend(
        format!("::operator_core::reported_status!({name}, {phase});")
            .parse::<TokenStream>()
            .expect("fixed tokens"),
    );
    out
}

/// A namespaced custom resource's spec: `#[schema]`'s derives and `CustomResource`, with
/// the arguments given passed to `#[kube(…)]` (kind, short name, doc, its printer columns)
/// and what every one of the project's kinds has added: namespaced, `PartialEq` on the
/// resource, the group and version of `api = "<group>/<version>"` (as in `apiVersion`), the
/// status type `<Kind>Status` unless `status` names another, and an `Age` column last.
#[proc_macro_attribute]
pub fn custom_resource(kube_args: TokenStream, item: TokenStream) -> TokenStream {
    let mut args = TokenStream::new();
    args.extend(
        "namespaced, derive = \"PartialEq\","
            .parse::<TokenStream>()
            .expect("fixed tokens"),
    );
    let mut implied = String::new();
    if let Some((group, version)) = argument(&kube_args, "api").and_then(|api| {
        let (group, version) = api.split_once('/')?;
        Some((group.to_string(), version.to_string()))
    }) {
        implied.push_str(&format!(", group = \"{group}\", version = \"{version}\""));
    }
    if let (None, Some(kind)) = (argument(&kube_args, "status"), argument(&kube_args, "kind")) {
        implied.push_str(&format!(", status = \"{kind}Status\""));
    }
    args.extend(without_argument(kube_args, "api"));
    args.extend(implied.parse::<TokenStream>().expect("names and strings"));
    args.extend(
        ", printcolumn(name = \"Age\", type_ = \"date\", json_path = \".metadata.creationTimestamp\")"
            .parse::<TokenStream>()
            .expect("fixed tokens"),
    );
    let mut out: TokenStream = "#[allow(clippy::duplicated_attributes)] \
         #[::serde_with::skip_serializing_none] \
         #[derive(::kube::CustomResource, ::kube::KubeSchema, ::serde::Serialize, \
         ::serde::Deserialize, Clone, Debug, PartialEq)] #"
        .parse()
        .expect("fixed tokens");
    let kube: TokenStream = "kube".parse().expect("fixed tokens");
    let mut attribute = kube;
    attribute.extend([TokenTree::Group(Group::new(Delimiter::Parenthesis, args))]);
    out.extend([TokenTree::Group(Group::new(Delimiter::Bracket, attribute))]);
    out.extend(
        "#[serde(rename_all = \"camelCase\")]"
            .parse::<TokenStream>()
            .expect("fixed tokens"),
    );
    out.extend(item);
    out
}

/// The value of the top-level argument `name = "value"` (without its quotes) or
/// `name = Ident`.
fn argument(args: &TokenStream, name: &str) -> Option<String> {
    let tokens: Vec<TokenTree> = args.clone().into_iter().collect();
    tokens.windows(3).find_map(|w| match w {
        [
            TokenTree::Ident(key),
            TokenTree::Punct(eq),
            value @ (TokenTree::Literal(_) | TokenTree::Ident(_)),
        ] if key.to_string() == name && eq.as_char() == '=' => {
            Some(value.to_string().trim_matches('"').to_string())
        }
        _ => None,
    })
}

/// The arguments without the top-level `name = "value"` (and the comma after it).
fn without_argument(args: TokenStream, name: &str) -> TokenStream {
    let tokens: Vec<TokenTree> = args.into_iter().collect();
    let mut kept = Vec::with_capacity(tokens.len());
    let mut i = 0;
    while i < tokens.len() {
        let is_named = matches!(&tokens[i], TokenTree::Ident(key) if key.to_string() == name)
            && matches!(tokens.get(i + 1), Some(TokenTree::Punct(eq)) if eq.as_char() == '=');
        if is_named {
            i += 3;
            if matches!(tokens.get(i), Some(TokenTree::Punct(comma)) if comma.as_char() == ',') {
                i += 1;
            }
        } else {
            kept.push(tokens[i].clone());
            i += 1;
        }
    }
    kept.into_iter().collect()
}

/// `, A, B` for the derives `A, B` given to an attribute (empty for none).
fn derives_after(extra: TokenStream) -> String {
    let extra = extra.to_string();
    if extra.trim().is_empty() {
        String::new()
    } else {
        format!(", {extra}")
    }
}

/// Whether the item is an enum: `enum` comes before its body.
fn is_enum(item: &TokenStream) -> bool {
    item.clone()
        .into_iter()
        .take_while(|t| !matches!(t, TokenTree::Group(g) if g.delimiter() == Delimiter::Brace))
        .any(|t| matches!(t, TokenTree::Ident(i) if i.to_string() == "enum"))
}

fn prepend(prefix: &str, item: TokenStream) -> TokenStream {
    let mut out: TokenStream = prefix.parse().expect("fixed tokens");
    out.extend(item);
    out
}
