// Seal/Open throughput per cipher and block size, and the measurement behind
// reusing one EVP_CIPHER_CTX per thread for AES-256-GCM (fs/crypto.cpp).
//
//   ninja -C build bench/seal_bench && build/bench/seal_bench
#include <benchmark/benchmark.h>
#include <openssl/evp.h>

#include <memory>
#include <string>

#include "fs/crypto.h"
#include "fs/sealer_impl.h"

namespace enclavefs {
namespace {

std::shared_ptr<SealingContext> BenchContext(CipherId cipher,
                                             uint32_t block_size) {
  auto ctx = std::make_shared<SealingContext>();
  ctx->cipher = cipher;
  ctx->block_size = block_size;
  ctx->node_size = 16384;
  RandomBytes(ctx->uuid);
  RandomBytes(ctx->encryption_key.span());
  RandomBytes(ctx->naming_key.span());
  return ctx;
}

// Arguments: cipher id, block size.
void BM_Seal(benchmark::State& state) {
  const auto cipher = static_cast<CipherId>(state.range(0));
  const auto size = static_cast<uint32_t>(state.range(1));
  SealerImpl sealer(BenchContext(cipher, size));
  const std::string name = sealer.NewBlockName();
  const std::string plain(sealer.Capacity(BlockKind::kData), 'p');
  for (auto _ : state) {
    auto sealed = sealer.Seal(BlockKind::kData, name, plain);
    if (!sealed.ok()) state.SkipWithError("seal failed");
    benchmark::DoNotOptimize(sealed);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * size);
  state.SetLabel(std::string(CipherName(cipher)));
}

void BM_Open(benchmark::State& state) {
  const auto cipher = static_cast<CipherId>(state.range(0));
  const auto size = static_cast<uint32_t>(state.range(1));
  SealerImpl sealer(BenchContext(cipher, size));
  const std::string name = sealer.NewBlockName();
  auto sealed =
      sealer.Seal(BlockKind::kData, name,
                  std::string(sealer.Capacity(BlockKind::kData), 'p'));
  if (!sealed.ok()) {
    state.SkipWithError("seal failed");
    return;
  }
  for (auto _ : state) {
    auto opened = sealer.Open(BlockKind::kData, name, sealed->bytes);
    if (!opened.ok()) state.SkipWithError("open failed");
    benchmark::DoNotOptimize(opened);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * size);
  state.SetLabel(std::string(CipherName(cipher)));
}

void SealArgs(benchmark::internal::Benchmark* b) {
  for (auto cipher : {CipherId::kAes256Gcm, CipherId::kXChaCha20Poly1305}) {
    for (int64_t size : {4 << 10, 64 << 10, 1 << 20}) {
      b->Args({static_cast<int64_t>(cipher), size});
    }
  }
}
BENCHMARK(BM_Seal)->Apply(SealArgs);
BENCHMARK(BM_Open)->Apply(SealArgs);

// Raw EVP AES-256-GCM over 4 KiB: a fresh context per call versus one reused
// context. Arg 0: per call, 1: reused.
void BM_EvpGcmContext(benchmark::State& state) {
  const bool reuse = state.range(0) == 1;
  EVP_CIPHER* cipher = EVP_CIPHER_fetch(nullptr, "AES-256-GCM", nullptr);
  unsigned char key[32] = {1}, iv[12] = {2}, tag[16];
  std::string buf(4096, 'x');
  auto* p = reinterpret_cast<unsigned char*>(buf.data());
  EVP_CIPHER_CTX* shared = EVP_CIPHER_CTX_new();
  for (auto _ : state) {
    EVP_CIPHER_CTX* ctx = reuse ? shared : EVP_CIPHER_CTX_new();
    int len = 0;
    EVP_EncryptInit_ex2(ctx, cipher, key, iv, nullptr);
    EVP_EncryptUpdate(ctx, p, &len, p, static_cast<int>(buf.size()));
    EVP_EncryptFinal_ex(ctx, p + len, &len);
    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, 16, tag);
    if (!reuse) EVP_CIPHER_CTX_free(ctx);
    benchmark::DoNotOptimize(tag);
  }
  EVP_CIPHER_CTX_free(shared);
  EVP_CIPHER_free(cipher);
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * 4096);
  state.SetLabel(reuse ? "reused ctx" : "ctx per call");
}
BENCHMARK(BM_EvpGcmContext)->Arg(0)->Arg(1);

}  // namespace
}  // namespace enclavefs

BENCHMARK_MAIN();
