
+type.googleapis.com/xds.type.v3.TypedStruct™
$type.googleapis.com/sse.FilterConfigÅ

allow_credentials 
∞
allowed_originsú2ô
https://localhost:8080
http://localhost:8080
http://127.0.0.1:8080
https://localhost:8443
https://127.0.0.1:8443
http://localhost:3000

cache_control
no-cache
J
exposed_headers725
x-sse-replay
x-sse-stream
x-sse-unavailable

max_age10m

stream_log_levelinfo


tag_headerx-sse-stream