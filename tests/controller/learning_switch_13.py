"""An OpenFlow 1.3 L2 learning switch for os-ken, with the behaviour of os-ken's (Ryu's)
`simple_switch_13` sample app, which the os-ken wheels on PyPI no longer ship (os-ken >= 2.0
has only `os_ken.app.ofctl`; 1.4.1 still has it but does not import with a current eventlet).

- On connect: SET_CONFIG with miss_send_len = OFPCML_MAX (see below), and a table-miss flow (priority 0, no match) sending packets to the controller.
- On packet-in: learn the source MAC on the in-port; if the destination is known, install a
  priority-1 flow `in_port, eth_src, eth_dst -> output` and send the packet there; else flood.

Run: osken-manager --ofp-tcp-listen-port PORT tests/controller/learning_switch_13.py
"""

from os_ken.base import app_manager
from os_ken.controller import ofp_event
from os_ken.controller.handler import CONFIG_DISPATCHER, MAIN_DISPATCHER, set_ev_cls
from os_ken.lib.packet import ether_types, ethernet, packet
from os_ken.ofproto import ofproto_v1_3


class LearningSwitch13(app_manager.OSKenApp):
    OFP_VERSIONS = [ofproto_v1_3.OFP_VERSION]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.mac_to_port = {}

    @set_ev_cls(ofp_event.EventOFPSwitchFeatures, CONFIG_DISPATCHER)
    def switch_features(self, ev):
        dp = ev.msg.datapath
        ofp, parser = dp.ofproto, dp.ofproto_parser
        self.logger.info("switch connected: dpid=%016x", dp.id)
        # A non-zero miss_send_len: Open vSwitch (and ironflow) send asynchronous messages to a
        # connection made to their passive port only after it asks with SET_CONFIG (os-ken's
        # ofp_handler never sends one). Harmless on an active connection.
        dp.send_msg(parser.OFPSetConfig(dp, ofp.OFPC_FRAG_NORMAL, ofp.OFPCML_MAX))
        actions = [parser.OFPActionOutput(ofp.OFPP_CONTROLLER, ofp.OFPCML_NO_BUFFER)]
        self.add_flow(dp, 0, parser.OFPMatch(), actions)

    def add_flow(self, dp, priority, match, actions, buffer_id=None):
        ofp, parser = dp.ofproto, dp.ofproto_parser
        inst = [parser.OFPInstructionActions(ofp.OFPIT_APPLY_ACTIONS, actions)]
        kw = {}
        if buffer_id is not None and buffer_id != ofp.OFP_NO_BUFFER:
            kw["buffer_id"] = buffer_id
        dp.send_msg(
            parser.OFPFlowMod(
                datapath=dp, priority=priority, match=match, instructions=inst, **kw
            )
        )

    @set_ev_cls(ofp_event.EventOFPPacketIn, MAIN_DISPATCHER)
    def packet_in(self, ev):
        msg = ev.msg
        dp = msg.datapath
        ofp, parser = dp.ofproto, dp.ofproto_parser
        in_port = msg.match["in_port"]
        eth = packet.Packet(msg.data).get_protocols(ethernet.ethernet)[0]
        if eth.ethertype == ether_types.ETH_TYPE_LLDP:
            return
        table = self.mac_to_port.setdefault(dp.id, {})
        table[eth.src] = in_port
        out_port = table.get(eth.dst, ofp.OFPP_FLOOD)
        self.logger.info(
            "packet in dpid=%016x %s -> %s in_port=%s out=%s",
            dp.id, eth.src, eth.dst, in_port, out_port,
        )
        actions = [parser.OFPActionOutput(out_port)]
        if out_port != ofp.OFPP_FLOOD:
            match = parser.OFPMatch(in_port=in_port, eth_dst=eth.dst, eth_src=eth.src)
            if msg.buffer_id != ofp.OFP_NO_BUFFER:
                self.add_flow(dp, 1, match, actions, msg.buffer_id)
                return
            self.add_flow(dp, 1, match, actions)
        data = msg.data if msg.buffer_id == ofp.OFP_NO_BUFFER else None
        dp.send_msg(
            parser.OFPPacketOut(
                datapath=dp, buffer_id=msg.buffer_id, in_port=in_port,
                actions=actions, data=data,
            )
        )
