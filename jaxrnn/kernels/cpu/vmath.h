// Vector math for the CPU recurrence kernel (recurrence.cc): 16-float vectors in GCC's vector
// extensions (AVX-512 registers where the compiler targets them, pairs of AVX2 or SSE otherwise) and
// the Cephes single-precision exp and tanh (S. L. Moshier, Cephes Math Library, 1984-2000), accurate to
// about an ulp, which is the precision XLA's own float32 exp and tanh have.
#pragma once
#include <cstdint>
#include <cstring>
typedef float v16 __attribute__((vector_size(64), aligned(4)));
typedef int32_t i16v __attribute__((vector_size(64), aligned(4)));
static inline v16 load16(const float* p) { v16 v; std::memcpy(&v, p, 64); return v; }
static inline void store16(float* p, v16 v) { std::memcpy(p, &v, 64); }
static inline v16 splat(float x) { return v16{} + x; }
static inline v16 vselect(i16v m, v16 a, v16 b) { return m ? a : b; }

// exp(x), Cephes expf: x = n ln2 + r, |r| <= ln2/2, degree-5 polynomial; ~1 ulp; NaN stays NaN.
static inline v16 vexp(v16 x) {
  // 88 rather than log(FLT_MAX) = 88.38: n stays <= 127, so 2^n below is a finite float
  x = vselect(x > 88.0f, splat(88.0f), x);
  x = vselect(x < -87.3365447504f, splat(-87.3365447504f), x);
  v16 n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
  v16 r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  v16 p = splat(1.9875691500e-4f);
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * (r * r) + r + 1.0f;
  i16v e = (__builtin_convertvector(n, i16v) + 127) << 23;
  v16 scale; std::memcpy(&scale, &e, 64);
  return p * scale;
}
static inline i16v vnonneg(v16 x) { return x >= 0.0f; }
static inline v16 vsigmoid(v16 x) { return 1.0f / (1.0f + vexp(-x)); }
// tanh, Cephes tanhf: odd polynomial below |x| 0.625, 1 - 2/(e^{2|x|}+1) above.
static inline v16 vtanh(v16 x) {
  v16 ax = vselect(x < 0.0f, -x, x);
  v16 big = 1.0f - 2.0f / (vexp(ax + ax) + 1.0f);
  big = vselect(x < 0.0f, -big, big);
  v16 z = x * x;
  v16 p = splat(-5.70498872745e-3f);
  p = p * z + 2.06390887954e-2f;
  p = p * z - 5.37397155531e-2f;
  p = p * z + 1.33314422036e-1f;
  p = p * z - 3.33332819422e-1f;
  v16 small = p * z * x + x;
  return vselect(ax < 0.625f, small, big);
}
