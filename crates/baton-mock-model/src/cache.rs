//! Prefix-cache simulation. A "token" is 4 bytes of the canonical prompt text, which is
//! close enough to real tokenizers for cache-shape tests and costs nothing.

use std::collections::HashSet;
use std::hash::{Hash, Hasher};

const BYTES_PER_TOKEN: usize = 4;
const BLOCK_TOKENS: usize = 64;

/// Every whole-block prefix seen so far, by a hash chained block to block (as providers
/// key their caches), so a lookup costs the prompt's length, not the history's.
#[derive(Default)]
pub struct PrefixCache {
    seen: HashSet<u64>,
}

/// `(prompt tokens, cached tokens)` for one prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheHit {
    pub prompt_tokens: u64,
    pub cached_tokens: u64,
}

impl PrefixCache {
    pub fn tokens(text: &[u8]) -> u64 {
        Self::tokens_in(text.len())
    }

    /// Tokens in a text of `bytes` bytes.
    pub fn tokens_in(bytes: usize) -> u64 {
        bytes.div_ceil(BYTES_PER_TOKEN) as u64
    }

    /// Looks the prompt up, then remembers it: the cached part is the longest prefix, in
    /// whole blocks, that some earlier prompt shared.
    pub fn lookup(&mut self, prompt: &[u8]) -> CacheHit {
        let hit = self.peek(prompt);
        self.remember(prompt);
        hit
    }

    fn chain(prompt: &[u8]) -> impl Iterator<Item = u64> + '_ {
        prompt
            .chunks_exact(BYTES_PER_TOKEN * BLOCK_TOKENS)
            .scan(0u64, |chain, block| {
                let mut h = std::collections::hash_map::DefaultHasher::new();
                chain.hash(&mut h);
                block.hash(&mut h);
                *chain = h.finish();
                Some(*chain)
            })
    }

    /// What a prompt would read from the cache now, without adding it.
    pub fn peek(&self, prompt: &[u8]) -> CacheHit {
        let hit_blocks = Self::chain(prompt)
            .take_while(|c| self.seen.contains(c))
            .count();
        CacheHit {
            prompt_tokens: Self::tokens(prompt),
            cached_tokens: (hit_blocks * BLOCK_TOKENS) as u64,
        }
    }

    /// Adds the prompt's prefixes: what a provider does once it has processed a prompt.
    pub fn remember(&mut self, prompt: &[u8]) {
        self.seen.extend(Self::chain(prompt));
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
