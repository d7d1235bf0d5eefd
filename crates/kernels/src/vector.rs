//! The one-line vector primitives the x86-64 kernels are written against, per register width:
//! [`avx2`] (`__m256`, 8 lanes) and [`avx512`] (`__m512`, 16 lanes) give the same names
//! (`V`, `LANES`, `splat`, `add`, `fmadd`, `loadu`, ...), so a kernel body written once as a
//! macro compiles for either by importing one module's (attention's [`vector_kernels!`], the
//! max-pool's `pool_rows!`). Each carries its module's target features; callers must have them.
//!
//! [`vector_kernels!`]: crate::attention::avx

/// Generates the primitives for the vector type `$v` of `$lanes` floats from its intrinsics,
/// each with the target features `$feature`.
macro_rules! primitives {
    (
        $v:ty, $lanes:literal, $(#[$feature:meta])*
        set1 = $set1:ident, setzero = $setzero:ident, add = $add:ident, sub = $sub:ident,
        mul = $mul:ident, max = $max:ident, min = $min:ident, fmadd = $fmadd:ident,
        fmsub = $fmsub:ident, loadu = $loadu:ident, storeu = $storeu:ident $(,)?
    ) => {
        use std::arch::x86_64::*;

        /// The vector type.
        pub(crate) type V = $v;
        /// `f32` lanes per vector.
        pub(crate) const LANES: usize = $lanes;

        /// `x` in every lane.
        #[inline]
        $(#[$feature])*
        pub(crate) fn splat(x: f32) -> V {
            $set1(x)
        }
        #[inline]
        $(#[$feature])*
        pub(crate) fn zero() -> V {
            $setzero()
        }
        #[inline]
        $(#[$feature])*
        pub(crate) fn add(a: V, b: V) -> V {
            $add(a, b)
        }
        #[inline]
        $(#[$feature])*
        pub(crate) fn sub(a: V, b: V) -> V {
            $sub(a, b)
        }
        #[inline]
        $(#[$feature])*
        pub(crate) fn mul(a: V, b: V) -> V {
            $mul(a, b)
        }
        #[inline]
        $(#[$feature])*
        pub(crate) fn max(a: V, b: V) -> V {
            $max(a, b)
        }
        #[inline]
        $(#[$feature])*
        pub(crate) fn min(a: V, b: V) -> V {
            $min(a, b)
        }
        /// `a b + c`, rounded once.
        #[inline]
        $(#[$feature])*
        pub(crate) fn fmadd(a: V, b: V, c: V) -> V {
            $fmadd(a, b, c)
        }
        /// `a b - c`, rounded once.
        #[inline]
        $(#[$feature])*
        pub(crate) fn fmsub(a: V, b: V, c: V) -> V {
            $fmsub(a, b, c)
        }
        /// The `LANES` floats at `at`.
        ///
        /// # Safety
        /// `at` must point to `LANES` readable floats.
        #[inline]
        $(#[$feature])*
        pub(crate) unsafe fn loadu(at: *const f32) -> V {
            // SAFETY: the caller guarantees `LANES` floats at `at`.
            unsafe { $loadu(at) }
        }
        /// `x` into the `LANES` floats at `at`.
        ///
        /// # Safety
        /// `at` must point to `LANES` writable floats.
        #[inline]
        $(#[$feature])*
        pub(crate) unsafe fn storeu(at: *mut f32, x: V) {
            // SAFETY: the caller guarantees `LANES` floats at `at`.
            unsafe { $storeu(at, x) }
        }
    };
}

/// AVX2 + FMA: `__m256`, 8 lanes ([`Simd::Avx2`](crate::simd::Simd::Avx2)).
pub(crate) mod avx2 {
    primitives!(
        __m256,
        8,
        #[target_feature(enable = "avx2,fma")]
        set1 = _mm256_set1_ps,
        setzero = _mm256_setzero_ps,
        add = _mm256_add_ps,
        sub = _mm256_sub_ps,
        mul = _mm256_mul_ps,
        max = _mm256_max_ps,
        min = _mm256_min_ps,
        fmadd = _mm256_fmadd_ps,
        fmsub = _mm256_fmsub_ps,
        loadu = _mm256_loadu_ps,
        storeu = _mm256_storeu_ps,
    );
}

/// AVX-512 F: `__m512`, 16 lanes ([`Simd::Avx512`](crate::simd::Simd::Avx512)).
pub(crate) mod avx512 {
    primitives!(
        __m512,
        16,
        #[target_feature(enable = "avx512f")]
        set1 = _mm512_set1_ps,
        setzero = _mm512_setzero_ps,
        add = _mm512_add_ps,
        sub = _mm512_sub_ps,
        mul = _mm512_mul_ps,
        max = _mm512_max_ps,
        min = _mm512_min_ps,
        fmadd = _mm512_fmadd_ps,
        fmsub = _mm512_fmsub_ps,
        loadu = _mm512_loadu_ps,
        storeu = _mm512_storeu_ps,
    );
}
