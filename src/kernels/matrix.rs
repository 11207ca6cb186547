//! Matrix products (the `gemm` crate) and the work split over candle's CPU
//! worker pool that every kernel here uses.

use super::*;

/// A read-only matrix: element `(i, j)` is `data[i·rs + j·cs]`.
#[derive(Clone, Copy)]
pub(super) struct Mat<'a, T> {
    data: &'a [T],
    rs: usize,
    cs: usize,
}

impl<'a, T> Mat<'a, T> {
    /// A row-major matrix whose rows start `rs` apart.
    pub(super) fn rows(data: &'a [T], rs: usize) -> Self {
        Self { data, rs, cs: 1 }
    }

    /// The transpose of a row-major matrix whose rows start `rs` apart.
    pub(super) fn transposed(data: &'a [T], rs: usize) -> Self {
        Self {
            data,
            rs: 1,
            cs: rs,
        }
    }

    /// Whether a `rows × cols` matrix with these strides lies inside `data`.
    pub(super) fn fits(&self, rows: usize, cols: usize) -> bool {
        rows == 0 || cols == 0 || (rows - 1) * self.rs + (cols - 1) * self.cs < self.data.len()
    }
}

/// `dst[m, n] = lhs[m, k] · rhs[k, n]`, plus the old `dst` when `accumulate`;
/// `dst` is row-major with rows `dst_rs` apart.
///
/// # Panics
///
/// When a matrix does not lie inside its slice (a bug in this module).
pub(super) fn matmul<T: Elem>(
    (m, n, k): (usize, usize, usize),
    (dst, dst_rs): (&mut [T], usize),
    lhs: Mat<'_, T>,
    rhs: Mat<'_, T>,
    accumulate: bool,
    parallelism: Parallelism,
) {
    let dst_fits = m == 0 || n == 0 || (m - 1) * dst_rs + n <= dst.len();
    assert!(
        dst_fits && dst_rs >= n && lhs.fits(m, k) && rhs.fits(k, n),
        "vaekit conv matmul: operands out of bounds"
    );
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            for row in dst.chunks_mut(dst_rs).take(m) {
                row[..n].fill(T::from_f64(0.0));
            }
        }
        return;
    }
    let one = T::from_f64(1.0);
    // SAFETY: the assertion above keeps every element gemm reads or writes —
    // (i, j) ↦ i·rs + j·cs for i < rows and j < cols — inside its slice, and the
    // rows of `dst` apart (dst_rs ≥ n); `dst` is borrowed mutably and so does not
    // overlap `lhs` or `rhs`; `Elem` is only implemented for f32 and f64, which
    // gemm supports.
    unsafe {
        ::gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            dst_rs as isize,
            accumulate,
            lhs.data.as_ptr(),
            lhs.cs as isize,
            lhs.rs as isize,
            rhs.data.as_ptr(),
            rhs.cs as isize,
            rhs.rs as isize,
            one,
            one,
            false,
            false,
            false,
            parallelism,
        );
    }
}

/// Fewest rows of the destination a thread takes in [`matmul_pooled`].
const POOLED_MIN_ROWS: usize = 16;

/// [`matmul`] with the destination's rows split over candle's CPU pool, each
/// piece a single-threaded product. The layers' products run here rather than
/// on gemm's own (rayon) threads: two pools on the same cores compete, candle's
/// workers spinning while rayon's compute.
pub(super) fn matmul_pooled<T: Elem>(
    (m, n, k): (usize, usize, usize),
    (dst, dst_rs): (&mut [T], usize),
    lhs: Mat<'_, T>,
    rhs: Mat<'_, T>,
    accumulate: bool,
) {
    let threads = pool_threads();
    let rows_per = m.div_ceil(threads).max(POOLED_MIN_ROWS);
    if threads <= 1 || m < 2 * POOLED_MIN_ROWS || dst_rs < n {
        matmul(
            (m, n, k),
            (dst, dst_rs),
            lhs,
            rhs,
            accumulate,
            Parallelism::None,
        );
        return;
    }
    let tasks: Vec<(usize, &mut [T])> = dst
        .chunks_mut(rows_per * dst_rs)
        .enumerate()
        .map(|(i, d)| (i * rows_per, d))
        .collect();
    run_tasks(tasks, true, |_, (row, d)| {
        let rows = rows_per.min(m - row);
        let piece = Mat {
            data: &lhs.data[(row * lhs.rs).min(lhs.data.len())..],
            ..lhs
        };
        matmul(
            (rows, n, k),
            (d, dst_rs),
            piece,
            rhs,
            accumulate,
            Parallelism::None,
        );
    });
}

/// Threads that share the work of one op: the calling thread and the workers
/// of candle's CPU pool, the one its own element-wise kernels run on (using
/// it rather than a second pool keeps the two from competing for the cores).
pub(super) fn pool_threads() -> usize {
    barrier_pool().n_workers() + 1
}

/// How to run `tasks` independent pieces of work: spread over the pool with
/// single-threaded matrix products (`true`), or one after the other with
/// multithreaded ones when there are fewer pieces than threads (`false`).
pub(super) fn plan(tasks: usize) -> (bool, Parallelism) {
    let threads = pool_threads();
    if threads <= 1 {
        (false, Parallelism::None)
    } else if tasks >= threads {
        (true, Parallelism::None)
    } else {
        (false, Parallelism::Rayon(threads))
    }
}

/// Runs `f(i, task)` for every task, spread over candle's CPU pool when
/// `parallel`, in order on this thread otherwise.
pub(super) fn run_tasks<I: Send>(tasks: Vec<I>, parallel: bool, f: impl Fn(usize, I) + Sync) {
    if !parallel || tasks.len() <= 1 {
        for (i, t) in tasks.into_iter().enumerate() {
            f(i, t);
        }
        return;
    }
    let slots: Vec<Mutex<Option<I>>> = tasks.into_iter().map(|t| Mutex::new(Some(t))).collect();
    barrier_pool().execute_chunked(slots.len(), |range| {
        for i in range {
            let task = slots[i]
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take();
            if let Some(t) = task {
                f(i, t);
            }
        }
    });
}
