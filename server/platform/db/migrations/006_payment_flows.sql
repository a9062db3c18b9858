-- How an order is paid: qr (Alipay precreate / WeChat Pay Native), page (Alipay page pay), wap (Alipay 手机网站支付),
-- h5 (WeChat Pay H5), jsapi (WeChat Pay inside WeChat). NULL for orders made before flows existed: the provider's
-- default flow of the time (Alipay's ALIPAY_CHECKOUT, WeChat Pay Native).
ALTER TABLE orders ADD COLUMN flow text CHECK (flow IN ('qr', 'page', 'wap', 'h5', 'jsapi'));
-- jsapi: the payer's openid (from WeChat's snsapi_base OAuth) and the signed WeixinJSBridge parameters.
ALTER TABLE orders ADD COLUMN payer_openid text;
ALTER TABLE orders ADD COLUMN pay_params jsonb;
