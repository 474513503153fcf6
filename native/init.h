// What each part of the addon adds to its exports; module.cc calls them all.
#pragma once

#include <napi.h>

namespace lanparty {

void InitBatchSocket(Napi::Env env, Napi::Object exports);
void InitBusyPoll(Napi::Env env, Napi::Object exports);
void InitTapDevice(Napi::Env env, Napi::Object exports);
void InitStreamReader(Napi::Env env, Napi::Object exports);
void InitInterface(Napi::Env env, Napi::Object exports);
void InitAead(Napi::Env env, Napi::Object exports);

}  // namespace lanparty
