FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY . .
RUN SECRET_KEY=build EMAIL_URL=dummymail:// python manage.py collectstatic --noinput
RUN useradd --create-home pov && chown -R pov /app
USER pov
EXPOSE 8000
