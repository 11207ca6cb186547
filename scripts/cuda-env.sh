# Source this file (". scripts/cuda-env.sh") to build candle's `cuda` feature on a machine
# with no GPU and no CUDA toolkit. It installs CUDA 13.0 compiler, headers and link libraries
# from PyPI wheels into $VAEKIT_CUDA_HOME (default ~/.cache/vaekit-cuda), builds a link-time
# stub of libcuda.so.1 (the real driver library is used at run time), and exports what the
# build scripts of cudarc and candle-kernels read. Idempotent; the first run takes ~2 minutes.
#
# Then:  cargo build --release --features cuda --example NAME      (or --test NAME)
# Why 13.0: PTX is JIT-compiled by the target's driver (580.x = CUDA 13.0); PTX from a
# newer nvcc is rejected there. H100/H200 are compute capability 9.0.

VAEKIT_CUDA_HOME=${VAEKIT_CUDA_HOME:-$HOME/.cache/vaekit-cuda}
export CUDA_COMPUTE_CAP=${CUDA_COMPUTE_CAP:-90}
_venv=$VAEKIT_CUDA_HOME/venv
_root=$VAEKIT_CUDA_HOME/root
if [ ! -x "$_venv/bin/pip" ]; then python3 -m venv "$_venv" || return 1; fi
if [ ! -f "$VAEKIT_CUDA_HOME/.wheels-ok" ]; then
  "$_venv/bin/pip" install -q --disable-pip-version-check \
    nvidia-cuda-nvcc==13.0.88 nvidia-cuda-crt==13.0.88 nvidia-nvvm==13.0.88 \
    nvidia-cuda-cccl==13.0.85 nvidia-cuda-runtime==13.0.96 nvidia-cuda-nvrtc==13.0.88 \
    nvidia-cublas==13.1.0.3 nvidia-curand==10.4.0.35 || return 1
  touch "$VAEKIT_CUDA_HOME/.wheels-ok"
fi
_cu13=$("$_venv/bin/python" -c 'import os,nvidia; print(os.path.join(list(nvidia.__path__)[0],"cu13"))')
mkdir -p "$_root/lib64/stubs"
ln -sfn "$_cu13/bin" "$_root/bin"; ln -sfn "$_cu13/include" "$_root/include"; ln -sfn "$_cu13/nvvm" "$_root/nvvm"
for _l in cublas cublasLt cudart nvrtc; do ln -sfn "$_cu13/lib/lib$_l.so.13" "$_root/lib64/lib$_l.so"; done
ln -sfn "$_cu13/lib/libcurand.so.10" "$_root/lib64/libcurand.so"
for _f in "$_cu13"/lib/*.so.*; do ln -sfn "$_f" "$_root/lib64/$(basename "$_f")"; done
# libcuda (driver API) ships in no wheel: a stub exporting every cu* symbol, used only to link.
if [ ! -f "$_root/lib64/stubs/libcuda.so" ]; then
  gcc -E -P -I"$_root/include" "$_root/include/cuda.h" | grep -oE '\bcu[A-Z][A-Za-z0-9_]*[[:space:]]*\(' | tr -d ' (' \
    | sort -u | awk '{print "int " $1 "(void){return 34;}"}' > "$_root/lib64/stubs/cuda_stub.c"
  gcc -shared -fPIC -O0 -Wl,-soname,libcuda.so.1 -o "$_root/lib64/stubs/libcuda.so" "$_root/lib64/stubs/cuda_stub.c" || return 1
fi
export PATH="$_root/bin:$PATH"
export CUDA_ROOT="$_root" CUDA_HOME="$_root" CUDA_PATH="$_root" CUDA_TOOLKIT_ROOT_DIR="$_root"
export CUDARC_CUDA_VERSION=13000 NVCC="$_root/bin/nvcc"
export CUDAFORGE_THREADS=${CUDAFORGE_THREADS:-$(nproc)}
case " ${RUSTFLAGS:-} " in *"rpath-link,$_root/lib64"*) ;; *) export RUSTFLAGS="${RUSTFLAGS:-} -C link-arg=-Wl,-rpath-link,$_root/lib64";; esac
unset _venv _root _cu13 _l _f
