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
    fn less_than_one_whole_page_is_nothing_to_advise() {
        advise_huge_pages(1, 100).expect("no whole page");
        assert!(advise_huge_pages(usize::MAX - 10, 100).is_err());
    }
}
