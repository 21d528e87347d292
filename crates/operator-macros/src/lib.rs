//! The attributes every operator's CRD types carry, said once. Re-exported by operator-core
//! as `operator_core::schema` and `operator_core::custom_resource`; see there.
//!
//! Written on `proc_macro` alone (no syn or quote): each macro puts fixed attributes in
//! front of the item it is given and passes the item through untouched, so error spans stay
//! the user's.

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

/// A namespaced custom resource's spec: `#[schema]`'s derives and `CustomResource`, with
/// the arguments given passed to `#[kube(…)]` (group, version, kind, short name, doc, its
/// printer columns) and what every one of the project's kinds has added: namespaced,
/// `PartialEq` on the resource, the status type `<Kind>Status` unless `status` names
/// another, and an `Age` column last.
#[proc_macro_attribute]
pub fn custom_resource(kube_args: TokenStream, item: TokenStream) -> TokenStream {
    let mut args = TokenStream::new();
    args.extend(
        "namespaced, derive = \"PartialEq\","
            .parse::<TokenStream>()
            .expect("fixed tokens"),
    );
    let status = match (argument(&kube_args, "status"), argument(&kube_args, "kind")) {
        (None, Some(kind)) => Some(format!(", status = \"{kind}Status\"")),
        _ => None,
    };
    args.extend(kube_args);
    if let Some(status) = status {
        args.extend(
            status
                .parse::<TokenStream>()
                .expect("a kind is an identifier"),
        );
    }
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

/// The string value of the top-level argument `name = "value"`, without its quotes.
fn argument(args: &TokenStream, name: &str) -> Option<String> {
    let tokens: Vec<TokenTree> = args.clone().into_iter().collect();
    tokens.windows(3).find_map(|w| match w {
        [
            TokenTree::Ident(key),
            TokenTree::Punct(eq),
            TokenTree::Literal(value),
        ] if key.to_string() == name && eq.as_char() == '=' => {
            Some(value.to_string().trim_matches('"').to_string())
        }
        _ => None,
    })
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
