//! Taking big buffers back once every holder has let go of them: under a
//! flood, a fresh buffer per read costs page faults (and zeroing).

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};

/// Chunks remembered at most (a few more are in flight under load).
const KEPT: usize = 16;

/// The last chunks handed out, whose buffers can be read into again.
#[derive(Default)]
pub struct Recycler {
    spent: VecDeque<Bytes>,
}

impl Recycler {
    /// Remembers a chunk handed out, to take its buffer back later.
    pub fn keep(&mut self, chunk: &Bytes) {
        self.spent.push_back(chunk.clone());
        if self.spent.len() > KEPT {
            self.spent.pop_front();
        }
    }

    /// The buffer of a chunk nothing else holds any more, if there is one
    /// (its old contents still in it).
    pub fn take(&mut self) -> Option<BytesMut> {
        let free = self.spent.iter().position(Bytes::is_unique)?;
        self.spent.remove(free)?.try_into_mut().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_buffer_comes_back_only_when_nobody_holds_it() {
        let mut r = Recycler::default();
        let chunk = Bytes::from(vec![1u8; 1000]);
        r.keep(&chunk);
        assert!(r.take().is_none(), "the chunk is still held");
        let ptr = chunk.as_ptr();
        drop(chunk);
        let back = r.take().expect("released");
        assert_eq!((back.as_ptr(), back.len()), (ptr, 1000));
        assert!(r.take().is_none());
    }

    #[test]
    fn a_buffer_handed_out_in_slices_comes_back_whole() {
        let mut r = Recycler::default();
        let mut buf = BytesMut::new();
        buf.resize(4096, 7);
        let whole = buf.freeze();
        r.keep(&whole);
        let (ptr, chunk) = (whole.as_ptr(), whole.slice(..100));
        drop(whole);
        assert!(r.take().is_none(), "a slice is still held");
        drop(chunk);
        let back = r.take().expect("released");
        assert_eq!((back.as_ptr(), back.len()), (ptr, 4096));
    }
}
