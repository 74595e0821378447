//! Prefix-cache simulation. A "token" is 4 bytes of the canonical prompt text, which is
//! close enough to real tokenizers for cache-shape tests and costs nothing.

const BYTES_PER_TOKEN: usize = 4;
const BLOCK_TOKENS: usize = 64;

#[derive(Default)]
pub struct PrefixCache {
    seen: Vec<Vec<u8>>,
}

/// `(prompt tokens, cached tokens)` for one prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheHit {
    pub prompt_tokens: u64,
    pub cached_tokens: u64,
}

impl PrefixCache {
    pub fn tokens(text: &[u8]) -> u64 {
        text.len().div_ceil(BYTES_PER_TOKEN) as u64
    }

    /// Looks the prompt up, then remembers it.
    pub fn lookup(&mut self, prompt: &[u8]) -> CacheHit {
        let best = self
            .seen
            .iter()
            .map(|p| p.iter().zip(prompt).take_while(|(a, b)| a == b).count())
            .max()
            .unwrap_or(0);
        let cached_tokens = (best / BYTES_PER_TOKEN / BLOCK_TOKENS * BLOCK_TOKENS) as u64;
        self.seen.push(prompt.to_vec());
        CacheHit {
            prompt_tokens: Self::tokens(prompt),
            cached_tokens,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cached_is_the_common_prefix_in_whole_blocks() {
        let mut c = PrefixCache::default();
        let a = vec![b'a'; 1000];
        assert_eq!(c.lookup(&a).cached_tokens, 0);
        let mut b = a.clone();
        b.extend_from_slice(&[b'b'; 500]);
        let hit = c.lookup(&b);
        assert_eq!(hit.prompt_tokens, 375);
        // 1000 shared bytes = 250 tokens = 3 whole blocks of 64.
        assert_eq!(hit.cached_tokens, 192);
        let mut d = b.clone();
        d[10] = b'z';
        assert_eq!(c.lookup(&d).cached_tokens, 0);
    }
}
