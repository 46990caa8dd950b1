FROM python:3.11-slim
WORKDIR /srv/doo-webhooks
COPY . .
RUN pip install --no-cache-dir . && useradd --system doo
USER doo
EXPOSE 8080
CMD ["doo-webhooks", "standalone", "--host", "0.0.0.0"]
