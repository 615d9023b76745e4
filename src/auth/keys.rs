//! Client access keys: the [`Secret`] type (zeroized on drop, redacted in `Debug`, compared in
//! constant time), one [`ClientKey`] (id, secret, policy), and the [`KeyStore`] the verifier looks
//! keys up in, built from the inline `[[auth.keys]]`, the `auth.keys_file` and `DDBCACHE_AUTH_KEYS`.
//!
//! The compact env form (`DDBCACHE_AUTH_KEYS`) is a list of keys separated by `;` or newlines,
//! each `ACCESS_KEY_ID:SECRET:TABLES:OPERATIONS`, where TABLES and OPERATIONS are comma-separated
//! globs, e.g. `AKIDREADER:s3cr3t:Orders*,Users:GetItem,Query;AKIDADMIN:t0p:*:*`.

use crate::auth::policy::Policy;
use crate::config::{AuthConfig, KeyConfig};
use crate::error::Error;
use serde::{Deserialize, Deserializer};
use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// A secret access key. Its memory is wiped on drop; `Debug` never shows it; equality is
/// constant-time. The only way to read it is [`Secret::expose`].
#[derive(Clone, Default)]
pub struct Secret(Zeroizing<String>);

impl Secret {
    pub fn new(secret: impl Into<String>) -> Secret {
        Secret(Zeroizing::new(secret.into()))
    }

    /// The secret itself, for deriving a signing key. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl PartialEq for Secret {
    fn eq(&self, other: &Secret) -> bool {
        self.0.as_bytes().ct_eq(other.0.as_bytes()).into()
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // The String moves into the Zeroizing wrapper; no copy is left behind.
        String::deserialize(d).map(|s| Secret(Zeroizing::new(s)))
    }
}

/// One client key: its id, its secret and what it may do.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientKey {
    access_key_id: String,
    secret: Secret,
    policy: Policy,
}

impl ClientKey {
    pub fn new(access_key_id: impl Into<String>, secret: Secret, policy: Policy) -> ClientKey {
        ClientKey {
            access_key_id: access_key_id.into(),
            secret,
            policy,
        }
    }

    pub fn access_key_id(&self) -> &str {
        &self.access_key_id
    }

    pub fn secret(&self) -> &Secret {
        &self.secret
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }
}

/// The client keys the verifier accepts, by access key id.
#[derive(Debug, Clone, Default)]
pub struct KeyStore {
    keys: HashMap<String, ClientKey>,
}

impl KeyStore {
    /// A store of `keys`; two keys with one id are an error.
    pub fn new(keys: impl IntoIterator<Item = ClientKey>) -> Result<KeyStore, Error> {
        let mut map = HashMap::new();
        for key in keys {
            let id = key.access_key_id.clone();
            if map.insert(id.clone(), key).is_some() {
                return Err(Error::Config(format!(
                    "auth: access key id {id:?} is configured twice"
                )));
            }
        }
        Ok(KeyStore { keys: map })
    }

    /// The keys of `[auth]`: inline keys (including those from `DDBCACHE_AUTH_KEYS`, merged into
    /// `auth.keys` by the config loader) and those of `auth.keys_file`, read now.
    pub fn from_config(auth: &AuthConfig) -> Result<KeyStore, Error> {
        let mut configs: Vec<KeyConfig> = auth.keys.clone();
        if let Some(path) = &auth.keys_file {
            configs.extend(read_keys_file(path)?);
        }
        let mut keys = Vec::with_capacity(configs.len());
        for (i, k) in configs.into_iter().enumerate() {
            keys.push(
                key_from_config(k)
                    .map_err(|m| Error::Config(format!("auth key #{}: {m}", i + 1)))?,
            );
        }
        if keys.is_empty() {
            return Err(Error::Config(
                "auth.enabled is true but no client keys are configured (auth.keys, auth.keys_file or DDBCACHE_AUTH_KEYS)".into(),
            ));
        }
        KeyStore::new(keys)
    }

    pub fn get(&self, access_key_id: &str) -> Option<&ClientKey> {
        self.keys.get(access_key_id)
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// Checks one configured key and builds it.
pub fn key_from_config(k: KeyConfig) -> Result<ClientKey, String> {
    check_key_config(&k)?;
    let policy = Policy::new(&k.tables, &k.operations)
        .map_err(|m| format!("access key id {:?}: {m}", k.access_key_id))?;
    Ok(ClientKey::new(k.access_key_id, k.secret_access_key, policy))
}

/// The checks [`crate::config::Config::validate`] and [`key_from_config`] share.
pub fn check_key_config(k: &KeyConfig) -> Result<(), String> {
    let id_ok = !k.access_key_id.is_empty()
        && k.access_key_id.len() <= 128
        && k.access_key_id.chars().all(|c| c.is_ascii_alphanumeric());
    if !id_ok {
        return Err(format!(
            "access_key_id {:?} must be 1 to 128 ASCII letters and digits",
            k.access_key_id
        ));
    }
    if k.secret_access_key.is_empty() {
        return Err(format!(
            "access key id {:?}: secret_access_key must not be empty",
            k.access_key_id
        ));
    }
    Policy::new(&k.tables, &k.operations)
        .map(|_| ())
        .map_err(|m| format!("access key id {:?}: {m}", k.access_key_id))
}

/// The keys file: `[[keys]]` tables shaped like `[[auth.keys]]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeysFile {
    #[serde(default)]
    keys: Vec<KeyConfig>,
}

fn read_keys_file(path: &Path) -> Result<Vec<KeyConfig>, Error> {
    let text = Zeroizing::new(
        std::fs::read_to_string(path)
            .map_err(|e| Error::io(format!("reading auth.keys_file {}", path.display()), e))?,
    );
    // toml's message quotes the offending line, which may hold a secret: keep only the position.
    let file: KeysFile = toml::from_str(&text).map_err(|e| {
        let at = e
            .span()
            .map(|s| format!(" at line {}", text[..s.start.min(text.len())].matches('\n').count() + 1))
            .unwrap_or_default();
        Error::Config(format!(
            "auth.keys_file {}{at}: not a keys file ([[keys]] with access_key_id, secret_access_key, tables, operations)",
            path.display()
        ))
    })?;
    Ok(file.keys)
}

/// Parses the compact `DDBCACHE_AUTH_KEYS` form (see the module docs). Errors never quote a
/// secret.
pub fn parse_env_keys(value: &str) -> Result<Vec<KeyConfig>, String> {
    let mut out = Vec::new();
    for (i, entry) in value
        .split([';', '\n'])
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .enumerate()
    {
        let fields: Vec<&str> = entry.split(':').collect();
        let [id, secret, tables, operations] = fields[..] else {
            return Err(format!(
                "entry #{} has {} ':'-separated fields; expected ACCESS_KEY_ID:SECRET:TABLES:OPERATIONS",
                i + 1,
                fields.len()
            ));
        };
        let list = |s: &str| -> Vec<String> {
            s.split(',')
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(str::to_owned)
                .collect()
        };
        let key = KeyConfig {
            access_key_id: id.trim().to_owned(),
            secret_access_key: Secret::new(secret.trim()),
            tables: list(tables),
            operations: list(operations),
        };
        check_key_config(&key).map_err(|m| format!("entry #{}: {m}", i + 1))?;
        out.push(key);
    }
    if out.is_empty() {
        return Err("no keys (expected ACCESS_KEY_ID:SECRET:TABLES:OPERATIONS;...)".into());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted_and_compared_by_value() {
        let s = Secret::new("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY");
        let shown = format!("{s:?}");
        assert!(!shown.contains("wJal"), "{shown}");
        assert_eq!(s, Secret::new("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"));
        assert_ne!(s, Secret::new("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEz"));
        assert_ne!(s, Secret::new("short"));
        let key = KeyConfig {
            access_key_id: "AKID".into(),
            secret_access_key: s.clone(),
            tables: vec!["*".into()],
            operations: vec!["*".into()],
        };
        let client = key_from_config(key.clone()).unwrap();
        for shown in [
            format!("{key:?}"),
            format!("{client:?}"),
            format!("{:?}", KeyStore::new([client]).unwrap()),
        ] {
            assert!(!shown.contains("wJal"), "{shown}");
            assert!(shown.contains("AKID"), "{shown}");
        }
    }

    #[test]
    fn env_form() {
        let keys = parse_env_keys("AKIDA:sec/ret+A=:Orders*, Users:GetItem,Query ;\nAKIDB:b:*:*;")
            .unwrap();
        assert_eq!(keys.len(), 2);
        assert_eq!(keys[0].access_key_id, "AKIDA");
        assert_eq!(keys[0].secret_access_key.expose(), "sec/ret+A=");
        assert_eq!(keys[0].tables, ["Orders*", "Users"]);
        assert_eq!(keys[0].operations, ["GetItem", "Query"]);
        assert_eq!(keys[1].tables, ["*"]);
        for bad in [
            "",
            "AKID:s3cr3tval",
            "AKID:s3cr3tval:*",
            "AKID::*:*",
            "AK-ID:s3cr3tval:*:*",
            "A:s3cr3tval:*:GetIt",
            "A:s3cr3tval::*",
            "A:s3cr3tval:*:*:x",
        ] {
            let e = parse_env_keys(bad).unwrap_err();
            assert!(!e.contains("s3cr3tval"), "{bad}: {e}");
        }
    }

    #[test]
    fn keys_file_and_duplicates() {
        let mut f = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
        std::io::Write::write_all(
            &mut f,
            b"[[keys]]\naccess_key_id = \"AKIDF\"\nsecret_access_key = \"filesecret\"\ntables = [\"A\"]\noperations = [\"GetItem\"]\n",
        )
        .unwrap();
        let mut auth = AuthConfig {
            enabled: true,
            keys_file: Some(f.path().to_owned()),
            ..AuthConfig::default()
        };
        let store = KeyStore::from_config(&auth).unwrap();
        assert_eq!(store.len(), 1);
        assert_eq!(store.get("AKIDF").unwrap().secret().expose(), "filesecret");
        assert!(store.get("AKIDX").is_none());

        auth.keys = parse_env_keys("AKIDF:other:*:*").unwrap();
        let e = KeyStore::from_config(&auth).unwrap_err().to_string();
        assert!(e.contains("configured twice"), "{e}");

        let mut bad = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
        std::io::Write::write_all(&mut bad, b"[[keys]]\naccess_key_id = \"AKIDF\"\nsecret_access_key = \"topsecret\"\ntables = \"A\"\n").unwrap();
        auth.keys.clear();
        auth.keys_file = Some(bad.path().to_owned());
        let e = KeyStore::from_config(&auth).unwrap_err().to_string();
        assert!(
            e.contains("not a keys file") && !e.contains("topsecret"),
            "{e}"
        );

        auth.keys_file = None;
        assert!(KeyStore::from_config(&auth).is_err());
    }
}
