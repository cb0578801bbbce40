use std::fmt;

/// A phone number in E.164: `+` then 8 to 15 digits, the first not zero. Spaces, dots, dashes
/// and parentheses people type are accepted and removed; a national number without a country
/// code is refused (we cannot guess the country).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Phone(String);

impl Phone {
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err("is required");
        }
        let mut out = String::with_capacity(16);
        for (i, c) in trimmed.chars().enumerate() {
            match c {
                '+' if i == 0 => out.push('+'),
                '0'..='9' => out.push(c),
                ' ' | '-' | '.' | '(' | ')' => {}
                _ => return Err("must be an international number such as +40 712 345 678"),
            }
        }
        // "00" is the international prefix in most of the world: 0040... is +40...
        if let Some(rest) = out.strip_prefix("00") {
            out = format!("+{rest}");
        }
        let digits = out
            .strip_prefix('+')
            .ok_or("must start with + and the country code")?;
        if !(8..=15).contains(&digits.len()) || digits.starts_with('0') {
            return Err("must be an international number such as +40 712 345 678");
        }
        Ok(Self(out))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for Phone {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Phone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Phone(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_to_e164() {
        assert_eq!(
            Phone::parse("+40 (712) 345-678").unwrap().as_str(),
            "+40712345678"
        );
        assert_eq!(
            Phone::parse("0040712345678").unwrap().as_str(),
            "+40712345678"
        );
    }

    #[test]
    fn rejects_non_e164() {
        for bad in [
            "",
            "0712345678",
            "+0712345678",
            "+1234567",
            "+1234567890123456",
            "+40 71a",
        ] {
            assert!(Phone::parse(bad).is_err(), "{bad:?} accepted");
        }
    }
}
