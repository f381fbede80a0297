// The live feed: change events this product's backend reads from the mirror's queue, as they arrive.
(function () {
  var feed = document.getElementById("feed");
  if (!feed || !window.EventSource) return;
  var source = new EventSource("/events");
  source.onmessage = function (message) {
    var event = JSON.parse(message.data);
    var item = document.createElement("li");
    item.className = "event event-" + event.type;
    var where = event.oldPath ? event.oldPath + " \u2192 " + event.path : event.path;
    item.textContent = event.type + ": " + where + (event.reason ? " (" + event.reason + ")" : "");
    feed.insertBefore(item, feed.firstChild);
  };
})();
