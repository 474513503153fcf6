{
  # lanparty_native: batched datagram I/O (recvmmsg/sendmmsg) for src/io/addon.ts.
  # Linux only; elsewhere (or without a compiler) src/io falls back to node:dgram.
  # Build: npm run build:native  (or sh scripts/build-native.sh)
  "targets": [
    {
      "target_name": "lanparty_native",
      "sources": [
        "module.cc", "common.cc", "instance.cc", "peer_table.cc", "rx_slabs.cc", "busy_poll.cc", "batch_socket.cc",
        "unix_backlog.cc", "tap_device.cc", "stream_reader.cc", "interface.cc", "aead.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": [
        "NAPI_VERSION=8",
        "NAPI_DISABLE_CPP_EXCEPTIONS",
        "NODE_ADDON_API_DISABLE_DEPRECATED",
        "NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS"
      ],
      "cflags_cc": ["-std=gnu++17", "-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"]
    }
  ]
}
