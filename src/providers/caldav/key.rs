//! Cal.com's stored CalDAV and Apple credentials. `Credential.key` holds a JSON string made by
//! Cal.com's `symmetricEncrypt`: AES-256-CBC with PKCS#7 padding, the key being the 32 bytes of
//! `CALENDSO_ENCRYPTION_KEY` read as latin1, written as `hex(iv) + ":" + hex(ciphertext)`. The
//! plaintext is `{"username", "password", "url"}` (Apple stores no `url`: iCloud's is fixed).
//! There is no MAC: a wrong key shows as bad padding or as plaintext that is not the expected JSON.
//! Errors never quote the key, the stored value or the plaintext.

use aes::cipher::{block_padding::Pkcs7, BlockDecryptMut, KeyIvInit};

use crate::error::ProviderError;

/// The account a CalDAV credential opens.
#[derive(Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
pub struct Account {
    pub username: String,
    pub password: String,
    /// The server's address as the user entered it; none for Apple (iCloud).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

impl std::fmt::Debug for Account {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Account")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

/// The encryption key as Cal.com reads `CALENDSO_ENCRYPTION_KEY`: its characters as latin1 bytes.
/// `Config` when it is not 32 of them.
pub fn key_bytes(key: &str) -> Result<[u8; 32], ProviderError> {
    let bytes: Vec<u8> = key
        .chars()
        .map(|c| u8::try_from(u32::from(c)).map_err(|_| bad_key()))
        .collect::<Result<_, _>>()?;
    bytes.try_into().map_err(|_| bad_key())
}

fn bad_key() -> ProviderError {
    ProviderError::Config("CALENDSO_ENCRYPTION_KEY must be 32 characters (latin1), as Cal.com requires".into())
}

fn corrupt(what: &str) -> ProviderError {
    ProviderError::Decode(format!("the stored CalDAV credential {what}"))
}

/// Decrypts a stored `Credential.key` (the JSON value: a string) into its account.
pub fn decrypt(stored: &serde_json::Value, key: &[u8; 32]) -> Result<Account, ProviderError> {
    let text = stored.as_str().ok_or_else(|| corrupt("is not an encrypted string"))?;
    let (iv_hex, data_hex) = text
        .split_once(':')
        .ok_or_else(|| corrupt("is not in Cal.com's iv:ciphertext form"))?;
    let iv: [u8; 16] = hex::decode(iv_hex)
        .ok()
        .and_then(|v| v.try_into().ok())
        .ok_or_else(|| corrupt("has an unreadable initialisation vector"))?;
    let mut data = hex::decode(data_hex).map_err(|_| corrupt("has unreadable ciphertext"))?;
    let plain = cbc::Decryptor::<aes::Aes256>::new(key.into(), &iv.into())
        .decrypt_padded_mut::<Pkcs7>(&mut data)
        .map_err(|_| corrupt("does not decrypt with CALENDSO_ENCRYPTION_KEY (wrong key or corrupt value)"))?;
    serde_json::from_slice::<Account>(plain)
        .map_err(|_| corrupt("does not decrypt to {username, password} with CALENDSO_ENCRYPTION_KEY (wrong key?)"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use aes::cipher::BlockEncryptMut;

    fn encrypt(plain: &str, key: &[u8; 32], iv: [u8; 16]) -> String {
        let out = cbc::Encryptor::<aes::Aes256>::new(key.into(), &iv.into())
            .encrypt_padded_vec_mut::<Pkcs7>(plain.as_bytes());
        format!("{}:{}", hex::encode(iv), hex::encode(out))
    }

    #[test]
    fn decrypts_what_encrypt_made_and_refuses_the_rest() {
        let key = key_bytes("0123456789abcdef0123456789abcdef").unwrap();
        let stored = encrypt(
            r#"{"username":"u","password":"p","url":"https://dav.example/"}"#,
            &key,
            [7; 16],
        );
        let acc = decrypt(&serde_json::json!(stored), &key).unwrap();
        assert_eq!((acc.username.as_str(), acc.password.as_str()), ("u", "p"));
        assert_eq!(acc.url.as_deref(), Some("https://dav.example/"));
        assert!(!format!("{acc:?}").contains("password"), "Debug shows no password");
        let other = key_bytes("ffffffffffffffffffffffffffffffff").unwrap();
        for bad in [
            decrypt(&serde_json::json!(stored), &other),
            decrypt(&serde_json::json!("nothex:zz"), &key),
            decrypt(&serde_json::json!({"username": "u"}), &key),
            decrypt(&serde_json::json!(format!("{}:{}", hex::encode([1u8; 16]), "00")), &key),
        ] {
            let e = bad.unwrap_err();
            assert!(matches!(e, ProviderError::Decode(_)), "{e:?}");
            assert!(!e.to_string().contains(&stored));
        }
        assert!(key_bytes("short").is_err());
        assert!(key_bytes("ŁŁŁŁŁŁŁŁŁŁŁŁŁŁŁŁŁŁŁŁŁŁŁŁŁŁŁŁŁŁŁŁ").is_err());
        // latin1: characters up to U+00FF are one byte each.
        assert_eq!(key_bytes(&"é".repeat(32)).unwrap(), [0xe9; 32]);
    }
}
