use crate::Usage;

/// USD per million tokens.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Pricing {
    pub input: f64,
    pub cached_input: f64,
    /// Cache writes; the plain input price when the vendor does not charge extra.
    pub cache_write: Option<f64>,
    pub output: f64,
}

impl Pricing {
    /// Cached tokens are priced once, at the cached rate; they are not also counted
    /// as plain input (the double count trace viewers are known for).
    pub fn cost(&self, u: &Usage) -> f64 {
        let cached = u.cache_read_tokens.min(u.input_tokens);
        let written = u.cache_write_tokens.min(u.input_tokens - cached);
        let plain = u.input_tokens - cached - written;
        (plain as f64 * self.input
            + cached as f64 * self.cached_input
            + written as f64 * self.cache_write.unwrap_or(self.input)
            + u.output_tokens as f64 * self.output)
            / 1_000_000.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cached_tokens_are_not_counted_twice() {
        let p = Pricing {
            input: 0.27,
            cached_input: 0.07,
            cache_write: None,
            output: 1.10,
        };
        let u = Usage {
            input_tokens: 1_000_000,
            cache_read_tokens: 600_000,
            output_tokens: 100_000,
            ..Default::default()
        };
        let want = 0.4 * 0.27 + 0.6 * 0.07 + 0.1 * 1.10;
        assert!((p.cost(&u) - want).abs() < 1e-12);
        let anth = Pricing {
            input: 3.0,
            cached_input: 0.3,
            cache_write: Some(3.75),
            output: 15.0,
        };
        let u = Usage {
            input_tokens: 300,
            cache_write_tokens: 100,
            cache_read_tokens: 100,
            output_tokens: 10,
            ..Default::default()
        };
        let want = (100.0 * 3.0 + 100.0 * 0.3 + 100.0 * 3.75 + 10.0 * 15.0) / 1e6;
        assert!((anth.cost(&u) - want).abs() < 1e-12);
    }
}
