/**
 * Golden frames captured from real clients (not produced by lanparty's own code).
 *
 * UDHCPC_DISCOVER: busybox 1.35.0 `udhcpc -i v1 -x hostname:guest1` on a veth pair in a network
 * namespace, captured with tshark on the peer (Debian 12). It carries client id option 61
 * (01 + MAC), hostname "guest1", vendor class "udhcp 1.35.0" and the broadcast flag clear.
 * DHCLIENT_DISCOVER: ISC dhclient 4.4.3-P1 (`dhclient -d -1 v1`) in the same setup; no option 61,
 * broadcast flag clear, hostname "vm" (the capturing host's name), TOS 0x10.
 * Both are whole Ethernet frames (destination MAC onward, no FCS).
 */
export const UDHCPC_DISCOVER_HEX =
  'ffffffffffff52540012345608004500014800000000401179a600000000ffffffff004400430134c057010106009801501a' +
  '0000000000000000000000000000000000000000525400123456' + '00'.repeat(10) + '00'.repeat(192) +
  '638253633501013902024037070103060c0f1c2a0c066775657374313c0c756468637020312e33352e303d0701525400123456ff' +
  '000000000000000000000000';

export const DHCLIENT_DISCOVER_HEX =
  'ffffffffffff525400123457080045100148000000008011399600000000ffffffff004400430134fc940101060029c2064f' +
  '0000000000000000000000000000000000000000525400123457' + '00'.repeat(10) + '00'.repeat(192) +
  '638253633501010c02766d370d011c02030f06770c2c2f1a792aff' + '00'.repeat(37);

/** busybox 1.35.0 `nslookup -type=a guest1.lan 127.0.0.1`, UDP payload captured on lo. */
export const NSLOOKUP_A_QUERY_HEX = '8a560100000100000000000006677565737431036c616e0000010001';
/** busybox 1.35.0 `nslookup 10.77.0.10 127.0.0.1`: the PTR query for 10.0.77.10.in-addr.arpa. */
export const NSLOOKUP_PTR_QUERY_HEX = '1f0f01000001000000000000023130013002373702313007696e2d61646472046172706100000c0001';
