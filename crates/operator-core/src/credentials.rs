//! What looks like a credential in plain configuration. Credentials reach a workload only
//! through Secret references; a value that ends up in a ConfigMap, a status or a log must not
//! be one. The rule, applied to header names, URL query parameter names and the like:
//!
//! 1. The name is split into words at every character that is not a letter or digit and at
//!    every lower-to-upper case change: `X-Api-Key`, `X_Api_Key` and `XApiKey` are all
//!    `x api key`.
//! 2. It is a credential when any word is one of [`CREDENTIAL_WORDS`], starts with `auth`
//!    (`authorization`, `authtoken`), or ends with one of [`CREDENTIAL_ENDINGS`] (`apikey`,
//!    `accesstoken`, `clientsecret`, `setcookie` written as one word).
//!
//! So `Authorization`, `Proxy-Authorization`, `Cookie`, `Set-Cookie`, `X-Password`,
//! `X-Credentials`, `X-Auth`, `X-Signature`, `ApiKey`, `X-Apikey`, `X_Api_Key`,
//! `X-Session-Token` and `X-Client-Secret-Id` are credentials; `X-Partner-Id`,
//! `Keyboard-Layout`, `Accept` and `X-Request-Id` are not. A URL is refused when it carries
//! user information (`https://user:pass@host`) or a query parameter whose name is a credential
//! by the same rule (`?token=…`, `?api_key=…`, `?sig=…`).
//!
//! False positives are cheap (the value goes in a Secret instead); a missed credential is a
//! leak, so the words are broad.

/// Words that name a credential wherever they appear in a name.
pub const CREDENTIAL_WORDS: &[&str] = &[
    "password",
    "passwd",
    "pwd",
    "passphrase",
    "secret",
    "secrets",
    "token",
    "tokens",
    "key",
    "apikey",
    "credential",
    "credentials",
    "creds",
    "cookie",
    "signature",
    "sig",
    "session",
    "jwt",
    "bearer",
    "otp",
];

/// Endings that make a word a credential (`apikey`, `accesstoken`, `setcookie`).
pub const CREDENTIAL_ENDINGS: &[&str] = &[
    "key",
    "token",
    "secret",
    "password",
    "passwd",
    "cookie",
    "signature",
    "credential",
    "credentials",
];

/// The words of a name, lower case (see the module docs).
fn words(name: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut current = String::new();
    let mut previous_lower = false;
    for c in name.chars() {
        if !c.is_alphanumeric() {
            if !current.is_empty() {
                words.push(std::mem::take(&mut current));
            }
            previous_lower = false;
            continue;
        }
        if c.is_uppercase() && previous_lower && !current.is_empty() {
            words.push(std::mem::take(&mut current));
        }
        previous_lower = c.is_lowercase() || c.is_ascii_digit();
        current.extend(c.to_lowercase());
    }
    if !current.is_empty() {
        words.push(current);
    }
    words
}

/// Whether a name (a header, a query parameter, a key) says it carries a credential.
pub fn is_credential_name(name: &str) -> bool {
    words(name).iter().any(|word| {
        CREDENTIAL_WORDS.contains(&word.as_str())
            || word.starts_with("auth")
            || CREDENTIAL_ENDINGS.iter().any(|e| word.ends_with(e))
    })
}

/// What in a URL is a credential: user information, or query parameters named like one. The
/// message names what to remove and never repeats a value.
pub fn url_credentials(url: &str) -> Result<(), String> {
    let after_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = after_scheme
        .split(['/', '?', '#'])
        .next()
        .unwrap_or_default();
    if authority.contains('@') {
        return Err(
            "carries user information (user:password@): put the credential in a Secret and reference it from auth.secretRef".into(),
        );
    }
    let query = url
        .split_once('?')
        .map_or("", |(_, q)| q.split('#').next().unwrap_or_default());
    let named: Vec<&str> = query
        .split('&')
        .filter_map(|pair| pair.split('=').next())
        .filter(|name| is_credential_name(name))
        .collect();
    if named.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "query parameter(s) {} look like credentials: put the credential in a Secret and reference it from auth.secretRef",
            named.join(", ")
        ))
    }
}

/// A value read from a Secret (a password, a private key): `Debug` prints `<hidden>`, so a
/// struct holding one can derive `Debug` and still be logged; the value is reached only by
/// [`Hidden::expose`], where it is sent.
#[derive(Clone, PartialEq, Eq)]
pub struct Hidden<T>(T);

impl<T> Hidden<T> {
    pub fn new(value: T) -> Self {
        Self(value)
    }

    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> std::fmt::Debug for Hidden<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<hidden>")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_split_into_words() {
        assert_eq!(words("X-Api-Key"), ["x", "api", "key"]);
        assert_eq!(words("X_Api_Key"), ["x", "api", "key"]);
        assert_eq!(words("XApiKey"), ["xapi", "key"]);
        assert_eq!(words("ApiKey"), ["api", "key"]);
        assert_eq!(words("Set-Cookie"), ["set", "cookie"]);
    }

    #[test]
    fn credential_names_are_found_however_they_are_written() {
        for name in [
            "Authorization",
            "Proxy-Authorization",
            "Cookie",
            "Set-Cookie",
            "X-Password",
            "X-Credentials",
            "X-Auth",
            "X-Signature",
            "ApiKey",
            "X-Apikey",
            "X_Api_Key",
            "X-API-KEY",
            "x-apikey",
            "X-Session-Token",
            "X-Client-Secret-Id",
            "access_token",
            "xaccesstoken",
            "sig",
            "passwd",
        ] {
            assert!(is_credential_name(name), "{name}");
        }
        for name in [
            "X-Partner-Id",
            "Keyboard-Layout",
            "Accept",
            "X-Request-Id",
            "Content-Type",
            "X-Region",
        ] {
            assert!(!is_credential_name(name), "{name}");
        }
    }

    #[test]
    fn a_hidden_value_is_never_printed() {
        let key = Hidden::new("PRIVATE KEY".to_string());
        assert_eq!(format!("{key:?}"), "<hidden>");
        assert_eq!(key.expose(), "PRIVATE KEY");
    }

    #[test]
    fn urls_with_user_information_or_secret_parameters_are_refused_without_the_value() {
        assert_eq!(
            url_credentials("https://bank.example:8443/api?region=eu"),
            Ok(())
        );
        let userinfo = url_credentials("https://user:PASS@bank.example/api");
        assert!(
            userinfo.as_ref().is_err_and(|m| !m.contains("PASS")),
            "{userinfo:?}"
        );
        let query = url_credentials("https://bank.example/api?region=eu&token=TOPSECRET&api_key=K");
        assert!(
            query
                .as_ref()
                .is_err_and(|m| m.contains("token, api_key") && !m.contains("TOPSECRET")),
            "{query:?}"
        );
        // An @ after the host is part of the path, not user information.
        assert_eq!(url_credentials("https://bank.example/users/@me"), Ok(()));
    }
}
