// The sequential part of a float32 LSTM or Elman layer on the CPU: all T steps of the forward
// recurrence, or of its backward, in ONE XLA FFI call (jaxrnn/kernels/cpu_recurrence.py builds and
// registers it). What XLA:CPU runs as a while loop of separate single-threaded kernels per step (the
// step's GEMM, the gate math, the stacking of outputs, the loop's own bookkeeping) is here one loop
// over time in which each thread owns a slice of the hidden units: their columns of every gate (the
// recurrent weights packed once per call into 16-column panels that stay in its caches), their cell
// state, their outputs. A step is a register-tiled GEMM of h_{t-1} by the thread's panels, the gate
// math of its units in 16-float vectors, and one barrier. The backward runs the same way over the
// stored pre-activations and leaves the weight gradients to one batched GEMM afterwards, as cuDNN's
// RNN backward does (Appleyard, Kocisky & Blunsom 2016, arXiv:1604.01946).
//
// Layouts (row-major, time-major): xs [T, B, I]; zs / dzs [T, B, G*H], gate blocks side by side in
// PyTorch's order (LSTM: i, f, g, o); the forward's stacked kernel [w_ih; w_hh] [I + H, G*H] and bias
// [G*H] (each step is ONE GEMM of [x_t, h_{t-1}]); the backward's w_hh [H, G*H]; h, c [B, H]; H a
// multiple of 16.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <cstdint>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "vmath.h"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

constexpr int kUnits = 16;  // units per block: one vector, one panel of 16 columns per gate

// ---------------------------------------------------------------- threads

class SpinBarrier {
 public:
  void reset(int n) { n_ = n; }
  void wait() {
    if (n_ == 1) return;
    const int gen = gen_.load(std::memory_order_acquire);
    if (count_.fetch_add(1, std::memory_order_acq_rel) == n_ - 1) {
      count_.store(0, std::memory_order_relaxed);
      gen_.store(gen + 1, std::memory_order_release);
      return;
    }
    for (int spins = 0; gen_.load(std::memory_order_acquire) == gen; ++spins) relax(spins);
  }
  // spin first (a step is microseconds), then yield: with more threads than free cores (pytest
  // workers, a busy machine) a pure spin would burn the time slice of the thread it waits for
  static void relax(int spins) {
    if (spins < 20000) {
#if defined(__x86_64__) || defined(__i386__)
      __builtin_ia32_pause();
#endif
    } else {
      std::this_thread::yield();
    }
  }

 private:
  int n_ = 1;
  alignas(64) std::atomic<int> count_{0};
  alignas(64) std::atomic<int> gen_{0};
};

using Body = std::function<void(int thread, int threads, SpinBarrier& barrier)>;

// The threads of one call: the caller and whichever helpers of XLA's intra-op pool join in time. A
// helper that starts after the caller has closed the team (the pool was busy) leaves at once, so a
// busy pool costs parallelism, never a deadlock; the team lives on the heap for such late helpers.
class Team {
 public:
  static constexpr int kClosed = 1 << 30;

  void help() {
    if (std::this_thread::get_id() == caller_) return;  // the pool ran the task inline
    int s = joined_.load(std::memory_order_acquire);
    do {
      if (s & kClosed) return;
    } while (!joined_.compare_exchange_weak(s, s + 1, std::memory_order_acq_rel));
    int n;
    for (int spins = 0; (n = go_.load(std::memory_order_acquire)) == 0; ++spins) SpinBarrier::relax(spins);
    (*body_)((s & ~kClosed) + 1, n, barrier_);
    finished_.fetch_add(1, std::memory_order_release);
  }

  // Runs body(thread, threads, barrier) on the caller and the helpers that joined within `wait`.
  void run(int helpers_asked, std::chrono::microseconds wait, const Body& body) {
    const auto deadline = std::chrono::steady_clock::now() + wait;
    for (int spins = 0; (joined_.load(std::memory_order_acquire) & ~kClosed) < helpers_asked &&
                        std::chrono::steady_clock::now() < deadline;
         ++spins)
      SpinBarrier::relax(spins);
    const int n = 1 + (joined_.fetch_or(kClosed, std::memory_order_acq_rel) & ~kClosed);
    barrier_.reset(n);
    body_ = &body;
    go_.store(n, std::memory_order_release);
    body(0, n, barrier_);
    for (int spins = 0; finished_.load(std::memory_order_acquire) < n - 1; ++spins) SpinBarrier::relax(spins);
  }

 private:
  const std::thread::id caller_ = std::this_thread::get_id();
  const Body* body_ = nullptr;
  SpinBarrier barrier_;
  alignas(64) std::atomic<int> joined_{0};
  alignas(64) std::atomic<int> go_{0};
  alignas(64) std::atomic<int> finished_{0};
};

void run_threads(ffi::ThreadPool& pool, int wanted, const Body& body) {
  auto team = std::make_shared<Team>();
  const int helpers = std::max(0, std::min<int>(wanted, static_cast<int>(pool.num_threads())) - 1);
  for (int i = 0; i < helpers; ++i) pool.Schedule([team] { team->help(); });
  team->run(helpers, std::chrono::microseconds(500), body);
}

struct Slice {  // a thread's unit blocks [begin, end)
  int begin, end;
  int count() const { return end - begin; }
};
Slice slice_of(int thread, int threads, int blocks) {
  return {blocks * thread / threads, blocks * (thread + 1) / threads};
}

// ---------------------------------------------------------------- GEMM

// The A operand of a step's GEMM: up to two row-major pieces side by side, [x_t, h_{t-1}] in the
// forward (so the input projection needs no [T, B, G*H] buffer of its own), dz_t alone in the backward.
struct Operand {
  const float* a1;
  int lda1, K1;
  const float* a2;
  int lda2, K2;
  Operand rows_from(int r) const {
    return {a1 ? a1 + static_cast<size_t>(r) * lda1 : nullptr, lda1, K1, a2 + static_cast<size_t>(r) * lda2, lda2, K2};
  }
};

// out[r, cols[q] : +16] = init[r * ldi + cols[q] : +16] (or 0) + A[r, :] @ panel q, for MR rows and
// NP panels, each panel [K1 + K2][16] floats, consecutive panels (K1 + K2) * 16 floats apart.
template <int MR, int NP>
void tile(const Operand& A, const float* panels, const int* cols, const float* init, int ldi, float* out, int ld) {
  const int K = A.K1 + A.K2;
  v16 acc[MR][NP];
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 8
    for (int q = 0; q < NP; ++q) acc[r][q] = init ? load16(init + r * ldi + cols[q]) : splat(0.0f);
  auto accumulate = [&](const float* a, int lda, int k0, int k1) {
    for (int k = k0; k < k1; ++k) {
      v16 w[NP];
#pragma GCC unroll 8
      for (int q = 0; q < NP; ++q) w[q] = load16(panels + (static_cast<size_t>(q) * K + k) * kUnits);
#pragma GCC unroll 8
      for (int r = 0; r < MR; ++r) {
        const v16 x = splat(a[r * lda + k - k0]);
#pragma GCC unroll 8
        for (int q = 0; q < NP; ++q) acc[r][q] += x * w[q];
      }
    }
  };
  if (A.K1) accumulate(A.a1, A.lda1, 0, A.K1);
  accumulate(A.a2, A.lda2, A.K1, K);
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 8
    for (int q = 0; q < NP; ++q) store16(out + r * ld + cols[q], acc[r][q]);
}

// MR rows by `np` panels: as many panels per tile as keep ~16 accumulators in registers
template <int MR>
void row_block(const Operand& A, const float* panels, int np, const int* cols, const float* init, int ldi, float* out,
               int ld) {
  constexpr int kWide = MR <= 2 ? 8 : MR <= 4 ? 4 : 2;
  const size_t stride = static_cast<size_t>(A.K1 + A.K2) * kUnits;
  int p = 0;
  for (; p + kWide <= np; p += kWide) tile<MR, kWide>(A, panels + p * stride, cols + p, init, ldi, out, ld);
  if constexpr (kWide > 4)
    for (; p + 4 <= np; p += 4) tile<MR, 4>(A, panels + p * stride, cols + p, init, ldi, out, ld);
  if constexpr (kWide > 2)
    for (; p + 2 <= np; p += 2) tile<MR, 2>(A, panels + p * stride, cols + p, init, ldi, out, ld);
  for (; p < np; ++p) tile<MR, 1>(A, panels + p * stride, cols + p, init, ldi, out, ld);
}

// out[:rows, cols] = init + A[:rows] @ panels (ldi = 0: one init row, a bias, for every row). Panels
// are taken in chunks that fit a core's L2 and each chunk serves every row before the next is read.
void gemm(int rows, const Operand& A, const float* panels, int np, const int* cols, const float* init, int ldi,
          float* out, int ld) {
  const int K = A.K1 + A.K2;
  const size_t panel_bytes = static_cast<size_t>(K) * kUnits * sizeof(float);
  const int chunk = std::max<int>(8, static_cast<int>((512 * 1024) / panel_bytes) / 8 * 8);
  for (int p0 = 0; p0 < np; p0 += chunk) {
    const int n = std::min(chunk, np - p0);
    const float* pp = panels + static_cast<size_t>(p0) * K * kUnits;
    for (int r = 0; r < rows; r += 8) {
      const int m = std::min(8, rows - r);
      const Operand Ar = A.rows_from(r);
      const float* ir = init ? init + static_cast<size_t>(r) * ldi : nullptr;
      float* orow = out + static_cast<size_t>(r) * ld;
      switch (m) {
        case 1: row_block<1>(Ar, pp, n, cols + p0, ir, ldi, orow, ld); break;
        case 2: row_block<2>(Ar, pp, n, cols + p0, ir, ldi, orow, ld); break;
        case 3: row_block<3>(Ar, pp, n, cols + p0, ir, ldi, orow, ld); break;
        case 4: row_block<4>(Ar, pp, n, cols + p0, ir, ldi, orow, ld); break;
        case 5: row_block<5>(Ar, pp, n, cols + p0, ir, ldi, orow, ld); break;
        case 6: row_block<6>(Ar, pp, n, cols + p0, ir, ldi, orow, ld); break;
        case 7: row_block<7>(Ar, pp, n, cols + p0, ir, ldi, orow, ld); break;
        default: row_block<8>(Ar, pp, n, cols + p0, ir, ldi, orow, ld); break;
      }
    }
  }
}

// The forward's panels of one thread: for each of its unit blocks, that block's columns of each of
// the G gates (so a block's gate math reads what the same thread just computed), from the stacked
// kernel w = [w_ih; w_hh] [K = I + H, G*H].
void pack_forward(const float* w, int K, int H, int G, Slice s, std::vector<float>& panels, std::vector<int>& cols) {
  const int GH = G * H;
  panels.assign(static_cast<size_t>(s.count()) * G * K * kUnits, 0.0f);
  cols.clear();
  float* dst = panels.data();
  for (int j = s.begin; j < s.end; ++j)
    for (int g = 0; g < G; ++g) {
      const int col = g * H + j * kUnits;
      cols.push_back(col);
      for (int k = 0; k < K; ++k, dst += kUnits) std::memcpy(dst, w + static_cast<size_t>(k) * GH + col, 64);
    }
}

// The backward's panels: w^T [G*H, H], one panel per unit block of the thread (dh_{t-1} = dz_t w^T).
void pack_backward(const float* w, int H, int G, Slice s, std::vector<float>& panels, std::vector<int>& cols) {
  const int GH = G * H;
  panels.assign(static_cast<size_t>(s.count()) * GH * kUnits, 0.0f);
  cols.clear();
  float* dst = panels.data();
  for (int j = s.begin; j < s.end; ++j) {
    cols.push_back(j * kUnits);
    for (int n = 0; n < GH; ++n, dst += kUnits)
      for (int i = 0; i < kUnits; ++i) dst[i] = w[static_cast<size_t>(j * kUnits + i) * GH + n];
  }
}

// ---------------------------------------------------------------- cells

// Each cell: G gates; forward(z, c_prev -> c, h) and backward(z, c_prev, dh, dc -> dz, dc_prev) on
// one 16-unit vector of one row; `z` points at the row's unit block of gate 0, gates H apart.
struct Lstm {
  static constexpr int G = 4;
  static constexpr bool kHasCell = true;
  static inline void forward(const float* z, int H, v16 c_prev, v16& c, v16& h) {
    const v16 i = vsigmoid(load16(z)), f = vsigmoid(load16(z + H)), g = vtanh(load16(z + 2 * H)),
              o = vsigmoid(load16(z + 3 * H));
    c = f * c_prev + i * g;
    h = o * vtanh(c);
  }
  static inline void backward(const float* z, int H, v16 c_prev, v16 dh, v16 dc, float* dz, v16& dc_prev) {
    const v16 i = vsigmoid(load16(z)), f = vsigmoid(load16(z + H)), g = vtanh(load16(z + 2 * H)),
              o = vsigmoid(load16(z + 3 * H));
    const v16 c = f * c_prev + i * g, tc = vtanh(c);
    const v16 dct = dc + dh * o * (1.0f - tc * tc);
    store16(dz, dct * g * i * (1.0f - i));
    store16(dz + H, dct * c_prev * f * (1.0f - f));
    store16(dz + 2 * H, dct * i * (1.0f - g * g));
    store16(dz + 3 * H, dh * tc * o * (1.0f - o));
    dc_prev = dct * f;
  }
};

template <bool kRelu>
struct Elman {
  static constexpr int G = 1;
  static constexpr bool kHasCell = false;
  static inline void forward(const float* z, int, v16, v16&, v16& h) {
    const v16 x = load16(z);
    h = kRelu ? vselect(x > 0.0f, x, splat(0.0f)) : vtanh(x);
  }
  static inline void backward(const float* z, int, v16, v16 dh, v16, float* dz, v16&) {
    const v16 x = load16(z);
    if constexpr (kRelu) {
      store16(dz, vselect(x > 0.0f, dh, splat(0.0f)));
    } else {
      const v16 h = vtanh(x);
      store16(dz, dh * (1.0f - h * h));
    }
  }
};

// ---------------------------------------------------------------- the two passes

struct Steps {  // step s of the pass runs time index t(s); `reverse` runs the layer right to left
  int T;
  bool reverse;
  int t(int s) const { return reverse ? T - 1 - s : s; }
};

// hs[t] = h_t for all t, and c_last; with zs (not null) each step's pre-activations and with c_prevs
// the cell state each step started from (what the backward reads)
template <typename Cell>
void forward_pass(const float* xs, const float* w, const float* bias, const float* h0, const float* c0, float* hs,
                  float* c_last, float* zs, float* c_prevs, int T, int B, int I, int H, bool reverse,
                  ffi::ThreadPool& pool, int threads) {
  constexpr int G = Cell::G;
  const int GH = G * H;
  const Steps steps{T, reverse};
  std::vector<float> scratch(zs ? 0 : static_cast<size_t>(B) * GH);
  std::vector<float> c(Cell::kHasCell ? static_cast<size_t>(B) * H : 0);
  run_threads(pool, threads, [&](int thread, int n, SpinBarrier& barrier) {
    const Slice s = slice_of(thread, n, H / kUnits);
    std::vector<float> panels;
    std::vector<int> cols;
    pack_forward(w, I + H, H, G, s, panels, cols);
    for (int b = 0; b < B && Cell::kHasCell; ++b)
      std::memcpy(&c[b * H + s.begin * kUnits], c0 + b * H + s.begin * kUnits, s.count() * kUnits * sizeof(float));
    for (int step = 0; step < T; ++step) {
      const int t = steps.t(step);
      const float* h_prev = step == 0 ? h0 : hs + static_cast<size_t>(steps.t(step - 1)) * B * H;
      float* z = zs ? zs + static_cast<size_t>(t) * B * GH : scratch.data();
      const Operand x_and_h{xs + static_cast<size_t>(t) * B * I, I, I, h_prev, H, H};
      gemm(B, x_and_h, panels.data(), static_cast<int>(cols.size()), cols.data(), bias, 0, z, GH);
      float* h_t = hs + static_cast<size_t>(t) * B * H;
      for (int b = 0; b < B; ++b)
        for (int j = s.begin; j < s.end; ++j) {
          const int u = b * H + j * kUnits;
          v16 c_new{}, h_new;
          Cell::forward(z + static_cast<size_t>(b) * GH + j * kUnits, H, Cell::kHasCell ? load16(&c[u]) : v16{},
                        c_new, h_new);
          store16(h_t + u, h_new);
          if constexpr (Cell::kHasCell) {
            if (c_prevs) std::memcpy(c_prevs + static_cast<size_t>(t) * B * H + u, &c[u], 64);
            store16(&c[u], c_new);
          }
        }
      barrier.wait();  // every unit of h_t is written before any thread's next GEMM reads it
    }
    for (int b = 0; b < B && Cell::kHasCell; ++b)
      std::memcpy(c_last + b * H + s.begin * kUnits, &c[b * H + s.begin * kUnits], s.count() * kUnits * sizeof(float));
  });
}

// dzs[t] = dL/dz_t; dh0, dc0 = dL/dh_{-1}, dL/dc_{-1}. dys [T, B, H] are the outputs' cotangents,
// dh_last / dc_last the final carry's; c_prevs [T, B, H] the cell state each step started from.
template <typename Cell>
void backward_pass(const float* zs, const float* c_prevs, const float* dys, const float* dh_last, const float* dc_last,
                   const float* w, float* dzs, float* dh0, float* dc0, int T, int B, int H, bool reverse,
                   ffi::ThreadPool& pool, int threads) {
  constexpr int G = Cell::G;
  const int GH = G * H;
  const Steps steps{T, reverse};
  std::vector<float> dh(static_cast<size_t>(B) * H), dc(Cell::kHasCell ? static_cast<size_t>(B) * H : 0);
  run_threads(pool, threads, [&](int thread, int n, SpinBarrier& barrier) {
    const Slice s = slice_of(thread, n, H / kUnits);
    std::vector<float> panels;
    std::vector<int> cols;
    pack_backward(w, H, G, s, panels, cols);
    const int width = s.count() * kUnits;
    for (int b = 0; b < B; ++b) {
      const int u0 = b * H + s.begin * kUnits;
      for (int k = 0; k < width; ++k) dh[u0 + k] = dh_last[u0 + k] + (T > 0 ? dys[static_cast<size_t>(steps.t(T - 1)) * B * H + u0 + k] : 0.0f);
      if constexpr (Cell::kHasCell) std::memcpy(&dc[u0], dc_last + u0, width * sizeof(float));
    }
    for (int step = T - 1; step >= 0; --step) {
      const int t = steps.t(step);
      const float* z = zs + static_cast<size_t>(t) * B * GH;
      float* dz = dzs + static_cast<size_t>(t) * B * GH;
      for (int b = 0; b < B; ++b)
        for (int j = s.begin; j < s.end; ++j) {
          const int u = b * H + j * kUnits;
          const size_t zu = static_cast<size_t>(b) * GH + j * kUnits;
          v16 dc_prev{};
          Cell::backward(z + zu, H,
                         Cell::kHasCell ? load16(c_prevs + static_cast<size_t>(t) * B * H + u) : v16{},
                         load16(&dh[u]), Cell::kHasCell ? load16(&dc[u]) : v16{}, dz + zu, dc_prev);
          if constexpr (Cell::kHasCell) store16(&dc[u], dc_prev);
        }
      barrier.wait();  // every gate column of dz_t is written before any thread's GEMM reads it
      // dh_{t-1} = dy_{t-1} + dz_t w^T (just dz_t w^T past the first step: the initial carry's gradient)
      const float* dy_prev = step > 0 ? dys + static_cast<size_t>(steps.t(step - 1)) * B * H : nullptr;
      gemm(B, Operand{nullptr, 0, 0, dz, GH, GH}, panels.data(), static_cast<int>(cols.size()), cols.data(), dy_prev, H,
           dh.data(), H);
    }
    for (int b = 0; b < B; ++b) {
      const int u0 = b * H + s.begin * kUnits;
      std::memcpy(dh0 + u0, &dh[u0], width * sizeof(float));
      if constexpr (Cell::kHasCell) std::memcpy(dc0 + u0, &dc[u0], width * sizeof(float));
    }
  });
}

// ---------------------------------------------------------------- FFI handlers

using F32 = ffi::Buffer<ffi::F32>;
using F32Out = ffi::ResultBuffer<ffi::F32>;

// us-like [T, B, G*H] (the backward's zs) against w_hh [H, G*H]
ffi::Error check_shapes(const F32& zs, const F32& w, int G, int& T, int& B, int& H) {
  const auto zd = zs.dimensions(), wd = w.dimensions();
  if (zd.size() != 3 || wd.size() != 2) return ffi::Error::InvalidArgument("jaxrnn cpu recurrence: expected zs [T, B, G*H] and w_hh [H, G*H]");
  T = static_cast<int>(zd[0]);
  B = static_cast<int>(zd[1]);
  H = static_cast<int>(wd[0]);
  if (wd[1] != static_cast<int64_t>(G) * H || zd[2] != wd[1] || H % kUnits != 0)
    return ffi::Error::InvalidArgument("jaxrnn cpu recurrence: w_hh must be [H, " + std::to_string(G) +
                                       "*H] with H a multiple of 16, and match zs [T, B, G*H]");
  return ffi::Error::Success();
}

// xs [T, B, I] against the stacked kernel [I + H, G*H] and the bias [G*H]
ffi::Error check_forward_shapes(const F32& xs, const F32& w, const F32& b, int G, int& T, int& B, int& I, int& H) {
  const auto xd = xs.dimensions(), wd = w.dimensions();
  if (xd.size() != 3 || wd.size() != 2) return ffi::Error::InvalidArgument("jaxrnn cpu recurrence: expected xs [T, B, I] and w [I + H, G*H]");
  T = static_cast<int>(xd[0]);
  B = static_cast<int>(xd[1]);
  I = static_cast<int>(xd[2]);
  H = static_cast<int>(wd[1] / G);
  if (wd[1] != static_cast<int64_t>(G) * H || wd[0] != I + H || H % kUnits != 0 || b.element_count() != wd[1])
    return ffi::Error::InvalidArgument("jaxrnn cpu recurrence: w must be [I + H, " + std::to_string(G) +
                                       "*H] with H a multiple of 16, xs [T, B, I] and b [G*H]");
  return ffi::Error::Success();
}

int clamp_threads(int64_t threads, int H) { return static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(threads, H / kUnits))); }

ffi::Error LstmForwardImpl(F32 xs, F32 w, F32 b, F32 h0, F32 c0, F32Out hs, F32Out c_last, F32Out zs,
                           F32Out c_prevs, ffi::ThreadPool pool, bool reverse, int64_t threads) {
  int T, B, I, H;
  if (auto e = check_forward_shapes(xs, w, b, 4, T, B, I, H); e.failure()) return e;
  const bool save = zs->element_count() > 0;
  forward_pass<Lstm>(xs.typed_data(), w.typed_data(), b.typed_data(), h0.typed_data(), c0.typed_data(),
                     hs->typed_data(), c_last->typed_data(), save ? zs->typed_data() : nullptr,
                     save ? c_prevs->typed_data() : nullptr, T, B, I, H, reverse, pool, clamp_threads(threads, H));
  return ffi::Error::Success();
}

ffi::Error LstmBackwardImpl(F32 zs, F32 c_prevs, F32 dys, F32 dh_last, F32 dc_last, F32 w, F32Out dzs, F32Out dh0,
                            F32Out dc0, ffi::ThreadPool pool, bool reverse, int64_t threads) {
  int T, B, H;
  if (auto e = check_shapes(zs, w, 4, T, B, H); e.failure()) return e;
  backward_pass<Lstm>(zs.typed_data(), c_prevs.typed_data(), dys.typed_data(), dh_last.typed_data(),
                      dc_last.typed_data(), w.typed_data(), dzs->typed_data(), dh0->typed_data(), dc0->typed_data(), T,
                      B, H, reverse, pool, clamp_threads(threads, H));
  return ffi::Error::Success();
}

ffi::Error ElmanForwardImpl(F32 xs, F32 w, F32 b, F32 h0, F32Out hs, F32Out zs, ffi::ThreadPool pool, bool reverse,
                            int64_t threads, bool relu) {
  int T, B, I, H;
  if (auto e = check_forward_shapes(xs, w, b, 1, T, B, I, H); e.failure()) return e;
  float* z = zs->element_count() > 0 ? zs->typed_data() : nullptr;
  auto run = relu ? forward_pass<Elman<true>> : forward_pass<Elman<false>>;
  run(xs.typed_data(), w.typed_data(), b.typed_data(), h0.typed_data(), nullptr, hs->typed_data(), nullptr, z, nullptr,
      T, B, I, H, reverse, pool, clamp_threads(threads, H));
  return ffi::Error::Success();
}

ffi::Error ElmanBackwardImpl(F32 zs, F32 dys, F32 dh_last, F32 w, F32Out dzs, F32Out dh0, ffi::ThreadPool pool,
                             bool reverse, int64_t threads, bool relu) {
  int T, B, H;
  if (auto e = check_shapes(zs, w, 1, T, B, H); e.failure()) return e;
  auto run = relu ? backward_pass<Elman<true>> : backward_pass<Elman<false>>;
  run(zs.typed_data(), nullptr, dys.typed_data(), dh_last.typed_data(), nullptr, w.typed_data(), dzs->typed_data(),
      dh0->typed_data(), nullptr, T, B, H, reverse, pool, clamp_threads(threads, H));
  return ffi::Error::Success();
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(JaxrnnLstmForward, LstmForwardImpl,
                              ffi::Ffi::Bind()
                                  .Arg<F32>().Arg<F32>().Arg<F32>().Arg<F32>().Arg<F32>()
                                  .Ret<F32>().Ret<F32>().Ret<F32>().Ret<F32>()
                                  .Ctx<ffi::ThreadPool>()
                                  .Attr<bool>("reverse").Attr<int64_t>("threads"));

XLA_FFI_DEFINE_HANDLER_SYMBOL(JaxrnnLstmBackward, LstmBackwardImpl,
                              ffi::Ffi::Bind()
                                  .Arg<F32>().Arg<F32>().Arg<F32>().Arg<F32>().Arg<F32>().Arg<F32>()
                                  .Ret<F32>().Ret<F32>().Ret<F32>()
                                  .Ctx<ffi::ThreadPool>()
                                  .Attr<bool>("reverse").Attr<int64_t>("threads"));

XLA_FFI_DEFINE_HANDLER_SYMBOL(JaxrnnElmanForward, ElmanForwardImpl,
                              ffi::Ffi::Bind()
                                  .Arg<F32>().Arg<F32>().Arg<F32>().Arg<F32>()
                                  .Ret<F32>().Ret<F32>()
                                  .Ctx<ffi::ThreadPool>()
                                  .Attr<bool>("reverse").Attr<int64_t>("threads").Attr<bool>("relu"));

XLA_FFI_DEFINE_HANDLER_SYMBOL(JaxrnnElmanBackward, ElmanBackwardImpl,
                              ffi::Ffi::Bind()
                                  .Arg<F32>().Arg<F32>().Arg<F32>().Arg<F32>()
                                  .Ret<F32>().Ret<F32>()
                                  .Ctx<ffi::ThreadPool>()
                                  .Attr<bool>("reverse").Attr<int64_t>("threads").Attr<bool>("relu"));
