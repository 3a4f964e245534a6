package synthetic

// Templates taken verbatim from a real HAProxy 2.6.12 (Debian 12) capture, golden set A,
// admin1.sock: the header with its 103 static columns, the `-` column and the h1/h2/ssl module
// counters, and one row of each type, which give the per-type pattern of empty cells.

const templateHeader = `# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status,weight,act,bck,chkfail,chkdown,lastchg,downtime,qlimit,pid,iid,sid,throttle,lbtot,tracked,type,rate,rate_lim,rate_max,check_status,check_code,check_duration,hrsp_1xx,hrsp_2xx,hrsp_3xx,hrsp_4xx,hrsp_5xx,hrsp_other,hanafail,req_rate,req_rate_max,req_tot,cli_abrt,srv_abrt,comp_in,comp_out,comp_byp,comp_rsp,lastsess,last_chk,last_agt,qtime,ctime,rtime,ttime,agent_status,agent_code,agent_duration,check_desc,agent_desc,check_rise,check_fall,check_health,agent_rise,agent_fall,agent_health,addr,cookie,mode,algo,conn_rate,conn_rate_max,conn_tot,intercepted,dcon,dses,wrew,connect,reuse,cache_lookups,cache_hits,srv_icur,src_ilim,qtime_max,ctime_max,rtime_max,ttime_max,eint,idle_conn_cur,safe_conn_cur,used_conn_cur,need_conn_est,uweight,agg_server_status,agg_server_check_status,agg_check_status,-,ssl_sess,ssl_reused_sess,ssl_failed_handshake,h2_headers_rcvd,h2_data_rcvd,h2_settings_rcvd,h2_rst_stream_rcvd,h2_goaway_rcvd,h2_detected_conn_protocol_errors,h2_detected_strm_protocol_errors,h2_rst_stream_resp,h2_goaway_resp,h2_open_connections,h2_backend_open_streams,h2_total_connections,h2_backend_total_streams,h1_open_connections,h1_open_streams,h1_total_connections,h1_total_streams,h1_bytes_in,h1_bytes_out,h1_spliced_bytes_in,h1_spliced_bytes_out,`

const templateFrontend = `fe_main,FRONTEND,,,0,1,9984,6,499,1425,0,0,0,,,,,OPEN,,,,,,,,,1,2,0,,,,0,0,0,6,,,,0,5,0,1,0,0,,0,6,6,,,0,0,0,0,,,,,,,,,,,,,,,,,,,,,http,,0,6,6,0,0,0,0,,,0,0,,,,,,,0,,,,,,,,,-,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,6,6,481,1595,0,0,`

const templateServer = `be_app,app1,0,0,0,1,,4,335,1055,,0,,0,0,0,0,UP,100,1,0,1,1,19,4,,1,4,1,,4,,2,0,,4,L7OK,200,0,0,3,0,1,0,0,,,,4,0,0,,,,,14,,,0,0,0,0,,,,Layer7 check passed,,2,2,3,,,,127.0.0.1:31001,,http,,,,,,,,0,4,0,,,0,,0,0,0,0,0,0,0,0,1,100,,,,-,0,0,0,,,,,,,,,,,,,,,,,,,,,,`

const templateBackend = `be_app,BACKEND,0,0,0,1,999,6,499,1425,0,0,,0,0,0,0,UP,150,2,0,,0,23,0,,1,4,0,,6,,1,0,,6,,,,0,5,0,1,0,0,,,,6,0,0,0,0,0,0,14,,,0,0,0,0,,,,,,,,,,,,,,http,roundrobin,,,,,,,0,6,0,0,0,,,0,0,0,0,0,,,,,150,0,0,0,-,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,41,41,5762,895,0,0,`

const templateInfo = `Name: HAProxy
Version: 2.6.12-1+deb12u4
Release_date: 2026/10/17
Nbthread: 1
Nbproc: 1
Process_num: 1
Pid: 11232
Uptime: 0d 0h00m22s
Uptime_sec: 22
Memmax_MB: 0
PoolAlloc_MB: 0
PoolUsed_MB: 0
PoolFailed: 0
Ulimit-n: 19999
Maxsock: 19999
Maxconn: 9984
Hard_maxconn: 9984
CurrConns: 0
CumConns: 69
CumReq: 12
MaxSslConns: 0
CurrSslConns: 0
CumSslConns: 0
Maxpipes: 0
PipesUsed: 0
PipesFree: 0
ConnRate: 0
ConnRateLimit: 0
MaxConnRate: 7
SessRate: 0
SessRateLimit: 0
MaxSessRate: 7
SslRate: 0
SslRateLimit: 0
MaxSslRate: 0
SslFrontendKeyRate: 0
SslFrontendMaxKeyRate: 0
SslFrontendSessionReuse_pct: 0
SslBackendKeyRate: 0
SslBackendMaxKeyRate: 0
SslCacheLookups: 0
SslCacheMisses: 0
CompressBpsIn: 0
CompressBpsOut: 0
CompressBpsRateLim: 0
Tasks: 22
Run_queue: 0
Idle_pct: 100
node: vm
Stopping: 0
Jobs: 5
Unstoppable Jobs: 0
Listeners: 3
ActivePeers: 0
ConnectedPeers: 0
DroppedLogs: 0
BusyPolling: 0
FailedResolutions: 0
TotalBytesOut: 12097
TotalSplicdedBytesOut: 0
BytesOutRate: 32
DebugCommandsIssued: 0
CumRecvLogs: 0
Build info: 2.6.12-1+deb12u4
Memmax_bytes: 0
PoolAlloc_bytes: 75288
PoolUsed_bytes: 75288
Start_time_sec: 1795312571
Tainted: 0

`
