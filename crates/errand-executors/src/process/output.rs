//! Reading a child's output without letting it grow without bound: only its
//! tail is kept, e.g. a command's stderr for its error (a command's stdout
//! has its own reader, which also finds status lines).

use tokio::io::{AsyncRead, AsyncReadExt};

const CHUNK: usize = 16 << 10;

/// Reads `pipe` to its end, keeping only its last `tail` bytes in `kept`.
pub async fn read_tail<R: AsyncRead + Unpin>(
    pipe: Option<&mut R>,
    tail: usize,
    kept: &mut Vec<u8>,
) {
    let Some(pipe) = pipe else { return };
    let mut chunk = vec![0; CHUNK];
    while let Ok(n @ 1..) = pipe.read(&mut chunk).await {
        kept.extend_from_slice(&chunk[..n]);
        // Trim only once the buffer is well past the tail, to avoid shifting per read.
        if kept.len() > 2 * tail + CHUNK {
            kept.drain(..kept.len() - tail);
        }
    }
    if kept.len() > tail {
        kept.drain(..kept.len() - tail);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn stderr_keeps_the_tail() {
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let mut kept = Vec::new();
        read_tail(Some(&mut &data[..]), 4096, &mut kept).await;
        assert_eq!(kept, data[data.len() - 4096..]);
    }
}
