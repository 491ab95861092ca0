//! Advice to the kernel about how to back memory sundial already owns.

use std::io;

/// The smallest page: advice applies to whole pages.
const PAGE: usize = 4096;

/// Asks the kernel to back the whole pages inside `len` octets at `addr` with transparent huge
/// pages (`madvise(MADV_HUGEPAGE)`), effective for pages first touched afterwards (and, through
/// khugepaged, for the others in time). Where transparent huge pages are `never`, this is
/// accepted and does nothing; a kernel built without them says `EINVAL`.
///
/// A large table looked up at random (the server's client table) otherwise costs a TLB miss on
/// most lookups besides the cache miss.
pub fn advise_huge_pages(addr: usize, len: usize) -> io::Result<()> {
    let start = addr.checked_add(PAGE - 1).map(|a| a & !(PAGE - 1));
    let end = addr.checked_add(len).map(|e| e & !(PAGE - 1));
    let (Some(start), Some(end)) = (start, end) else {
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    };
    if end <= start {
        return Ok(());
    }
    // SAFETY: MADV_HUGEPAGE changes only which pages the kernel uses to back the range, never
    // its contents, protection or mapping, so no memory the program uses can change under it;
    // a range that is not mapped is refused with ENOMEM. The pointer is only passed to the
    // kernel, never dereferenced.
    let rc = unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// A cache line on the machines sundial is built for.
const CACHE_LINE: usize = 64;

/// Asks the CPU to start loading the memory of `value` into its caches, and returns at once.
///
/// The server looks up one random set of its client table per request; touched cold, that is
/// a cache miss that stalls the request for the memory's full latency. Asked for all requests
/// of a received batch before the first is handled, the misses overlap each other and the
/// system calls in between instead of each being waited for in turn.
///
/// Only a hint: it changes no memory and cannot fault; on architectures other than x86-64 it
/// does nothing.
pub fn prefetch<T: ?Sized>(value: &T) {
    #[cfg(target_arch = "x86_64")]
    {
        use core::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        let start = core::ptr::from_ref(value).cast::<u8>();
        let first_line = start.wrapping_sub(start.addr() % CACHE_LINE);
        let end = start.addr().saturating_add(size_of_val(value));
        let mut line = first_line;
        while line.addr() < end {
            // SAFETY: a prefetch is a hint that reads nothing architecturally and never
            // faults, whatever the address; every address given lies within (or in the cache
            // line holding the start of) `value`, which the borrow keeps alive.
            #[allow(unused_unsafe, reason = "the intrinsic is safe in newer toolchains")]
            unsafe {
                _mm_prefetch::<_MM_HINT_T0>(line.cast::<i8>());
            }
            line = line.wrapping_add(CACHE_LINE);
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = value;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_heap_range_is_accepted_and_keeps_its_contents() {
        let mut v: Vec<u64> = Vec::with_capacity(1 << 20);
        let addr = v.as_ptr() as usize;
        let result = advise_huge_pages(addr, (1 << 20) * 8);
        // A kernel without transparent huge pages refuses the advice; that is all.
        if let Err(e) = &result {
            assert_eq!(e.raw_os_error(), Some(libc::EINVAL), "{e}");
        }
        v.extend(0..1 << 20);
        assert!(v.iter().enumerate().all(|(i, x)| *x == i as u64));
    }

    #[test]
    fn a_range_that_is_not_mapped_is_an_error_not_a_crash() {
        // The zero page is never mapped for a user process.
        let err = advise_huge_pages(0, 1 << 21).expect_err("nothing is mapped at 0");
        assert!(
            matches!(err.raw_os_error(), Some(libc::ENOMEM | libc::EINVAL)),
            "{err}"
        );
    }

    #[test]
    fn prefetching_leaves_every_value_as_it_was() {
        let table: Vec<[u64; 65]> = (0..64u64).map(|i| [i; 65]).collect();
        for set in &table {
            prefetch(set);
        }
        prefetch(&table[..]);
        prefetch(&());
        prefetch(&0u8);
        assert!(
            table
                .iter()
                .enumerate()
                .all(|(i, set)| set.iter().all(|x| *x == i as u64))
        );
    }

    #[test]
    fn less_than_one_whole_page_is_nothing_to_advise() {
        advise_huge_pages(1, 100).expect("no whole page");
        assert!(advise_huge_pages(usize::MAX - 10, 100).is_err());
    }
}
